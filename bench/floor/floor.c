// The capture floor: the agent's own BPF programs (same tracepoints, same
// port filter, same payload heads into the same ring buffer), drained by a C
// loop that decodes nothing. What any agent built on these hooks must pay.
//   floor PORT[,PORT...] SECONDS [--interval-ms N] [--spin-us N [--slice-us N]] [--sched-idle]
// (prints events and bytes drained on exit). The options make it a stand-in for
// an agent's CPU without its work (bench/tail-cost): drain every N ms (default
// 20), spin N µs after each drain (in slices of N µs with a sched_yield between),
// under SCHED_IDLE with --sched-idle.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "capture.h"
#include "capture.skel.h"

static volatile sig_atomic_t stop;
static unsigned long long events, bytes;

static void on_signal(int sig) { (void)sig; stop = 1; }

static long long now_us(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Busy for spin_us, with a sched_yield after each slice_us (0: in one piece). */
static void spin(long spin_us, long slice_us) {
	const long long start = now_us();
	long long slice_start = start;
	for (long long t = start; t - start < spin_us; t = now_us()) {
		if (slice_us > 0 && t - slice_start >= slice_us) {
			sched_yield();
			slice_start = now_us();
		}
	}
}

/* text as a whole number from `min` into *out; false when it is none. */
static int whole(const char *text, long min, long *out) {
	char *end = NULL;
	long v = strtol(text, &end, 10);
	if (end == text || *end != 0 || v < min) return 0;
	*out = v;
	return 1;
}

static int on_sample(void *ctx, void *data, size_t size) {
	(void)ctx;
	(void)data;
	events++;
	bytes += size;
	return 0;
}

int main(int argc, char **argv) {
	const char *usage = "usage: %s PORT[,PORT...] SECONDS [--interval-ms N] [--spin-us N [--slice-us N]] [--sched-idle]\n";
	if (argc < 3) {
		fprintf(stderr, usage, argv[0]);
		return 2;
	}
	long interval_ms = 20, spin_us = 0, slice_us = 0;
	int sched_idle = 0;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--sched-idle") == 0) {
			sched_idle = 1;
			continue;
		}
		long *value = strcmp(argv[i], "--interval-ms") == 0 ? &interval_ms
			      : strcmp(argv[i], "--spin-us") == 0   ? &spin_us
			      : strcmp(argv[i], "--slice-us") == 0  ? &slice_us
								    : NULL;
		if (!value || i + 1 >= argc || !whole(argv[++i], value == &interval_ms ? 1 : 0, value)) {
			fprintf(stderr, usage, argv[0]);
			fprintf(stderr, "floor: --interval-ms takes a whole number from 1, --spin-us and --slice-us from 0\n");
			return 2;
		}
	}
	if (sched_idle) {
		struct sched_param sp = {0};
		if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0) {
			fprintf(stderr, "floor: SCHED_IDLE: %s\n", strerror(errno));
			return 1;
		}
	}
	struct capture_bpf *skel = capture_bpf__open();
	if (!skel) {
		fprintf(stderr, "floor: failed to open BPF object: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->self_tgid = getpid();
	/* the syscall-tracepoint hooks only, like the agent's syscall mode */
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, skel->obj) {
		const char *sec = bpf_program__section_name(prog);
		if (strncmp(sec, "tracepoint/syscalls/", 20) != 0 && strncmp(sec, "tracepoint/sched/", 17) != 0)
			bpf_program__set_autoload(prog, false);
	}
	skel->rodata->max_payload = PBE_PAYLOAD_DEFAULT;
	skel->rodata->wakeup_bytes = 256 * 1024;
	int err = capture_bpf__load(skel);
	if (err) {
		fprintf(stderr, "floor: failed to load BPF programs: %s\n", strerror(-err));
		capture_bpf__destroy(skel);
		return 1;
	}
	char *ports = strdup(argv[1]);
	for (char *p = strtok(ports, ","); p; p = strtok(NULL, ",")) {
		__u16 port = (__u16)atoi(p);
		struct pbe_port_value v = {.protocol = 1};
		bpf_map_update_elem(bpf_map__fd(skel->maps.ports), &port, &v, BPF_ANY);
	}
	free(ports);
	err = capture_bpf__attach(skel);
	struct ring_buffer *rb = err ? NULL : ring_buffer__new(bpf_map__fd(skel->maps.events), on_sample, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "floor: failed to attach: %s\n", strerror(err ? -err : errno));
		capture_bpf__destroy(skel);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	time_t end = time(NULL) + atoi(argv[2]);
	printf("ready\n");
	fflush(stdout);
	// drain every interval_ms (default 20), or when woken past wakeup_bytes.
	// A stand-in for an agent's work drains by the clock alone, then spins: the
	// ring buffer's descriptor stays readable while data waits (level-triggered
	// once reported), so a poll after a spin would come back at once, and spin again
	while (!stop && time(NULL) < end) {
		if (spin_us == 0) {
			ring_buffer__poll(rb, (int)interval_ms);
			continue;
		}
		struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		ring_buffer__consume(rb);
		spin(spin_us, slice_us);
	}
	ring_buffer__consume(rb);
	printf("{\"events\":%llu,\"bytes\":%llu}\n", events, bytes);
	ring_buffer__free(rb);
	capture_bpf__destroy(skel);
	return 0;
}
