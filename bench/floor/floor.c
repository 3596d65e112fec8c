// The capture floor: the agent's own BPF programs (same tracepoints, same
// port filter, same payload heads into the same ring buffer), drained by a C
// loop that decodes nothing. What any agent built on these hooks must pay.
//   floor PORT[,PORT...] SECONDS   (prints events and bytes drained on exit)
#include <errno.h>
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

static int on_sample(void *ctx, void *data, size_t size) {
	(void)ctx;
	(void)data;
	events++;
	bytes += size;
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: %s PORT[,PORT...] SECONDS\n", argv[0]);
		return 2;
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
	// drain on the same cadence as the agent: every 20 ms, or when woken
	while (!stop && time(NULL) < end) ring_buffer__poll(rb, 20);
	ring_buffer__consume(rb);
	printf("{\"events\":%llu,\"bytes\":%llu}\n", events, bytes);
	ring_buffer__free(rb);
	capture_bpf__destroy(skel);
	return 0;
}
