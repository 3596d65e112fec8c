/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole kernel <-> user contract of the capture programs: limits, map keys,
 * the event header and the counters. Included by capture.bpf.c (kernel) and by
 * addon/ (user). Fixed-width types only, largest fields first, explicit padding.
 */
#ifndef PBE_CAPTURE_H
#define PBE_CAPTURE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#ifdef __cplusplus
#define PBE_STATIC_ASSERT static_assert
#else
#define PBE_STATIC_ASSERT _Static_assert
#endif

/* Largest payload head one event can carry (max_payload is clamped to it). */
#define PBE_PAYLOAD_LIMIT 16384
/* Default payload head when the user does not say. */
#define PBE_PAYLOAD_DEFAULT 4096
/*
 * When a syscall moved more than the head, its last PBE_TAIL_LIMIT bytes are
 * copied too (after the head, counted in cap_len and tail_len): the end of a
 * big write often frames the next message (last chunk of a chunked body).
 */
#define PBE_TAIL_LIMIT 256
/* How many iovecs of a readv/writev/recvmsg/sendmsg are copied at most. */
#define PBE_MAX_IOV 8
/* How many iovecs are walked to find the one holding the last byte (the tail). */
#define PBE_MAX_IOV_TAIL 64
/* Entries of the pid filter and of the port filter. */
#define PBE_MAX_PIDS 1024
#define PBE_MAX_PORTS 256
/* In-flight syscalls (one per thread between enter and exit). */
#define PBE_MAX_INFLIGHT 16384

/* Event kinds. */
enum pbe_kind {
	PBE_KIND_DATA = 1,    /* bytes moved on a socket (payload may be a head) */
	PBE_KIND_CONNECT = 2, /* connect() on a TCP socket returned 0/EINPROGRESS */
	PBE_KIND_ACCEPT = 3,  /* accept()/accept4() returned a TCP socket */
	PBE_KIND_CLOSE = 4,   /* close() of a TCP socket fd */
	PBE_KIND_EXEC = 5,    /* a process executed a program (no socket fields) */
};

/*
 * EXEC payload: PBE_EXEC_FILENAME bytes of NUL-terminated path, then the
 * argv strings (NUL-separated) as far as they fit; len is argv's true size.
 * Short-lived clients (curl) are gone before /proc can be read: this is how
 * their executable and arguments are still known.
 */
#define PBE_EXEC_FILENAME 256
#define PBE_EXEC_ARGS 1024

/* Direction of a DATA event, from the traced process's point of view. */
enum pbe_dir {
	PBE_DIR_EGRESS = 0,  /* write/send: the process sent these bytes */
	PBE_DIR_INGRESS = 1, /* read/recv: the process received these bytes */
};

/* Which syscall produced a DATA event (for diagnostics). */
enum pbe_source {
	PBE_SRC_NONE = 0,
	PBE_SRC_READ = 1,
	PBE_SRC_WRITE = 2,
	PBE_SRC_RECVFROM = 3,
	PBE_SRC_SENDTO = 4,
	PBE_SRC_READV = 5,
	PBE_SRC_WRITEV = 6,
	PBE_SRC_RECVMSG = 7,
	PBE_SRC_SENDMSG = 8,
	PBE_SRC_SENDFILE = 9,
};

/* Address families as the kernel stores them. */
#define PBE_AF_INET 2
#define PBE_AF_INET6 10

/*
 * Fixed header of every event in the ring buffer, followed by cap_len payload
 * bytes: the first (cap_len - tail_len) bytes of the data, then, when the data
 * was longer, its last tail_len bytes (the bytes between are a gap).
 *
 * seq is the TCP sequence number of the first byte of this event in its
 * direction (write_seq/copied_seq of the tcp_sock at syscall enter: the next
 * byte to send/read; at exit copied_seq may also count a FIN the read reached):
 * both ends of a loopback connection see the same numbers for the same bytes,
 * and a jump between two events of one socket is a gap (missed event...).
 */
struct pbe_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns() at syscall exit */
	__u64 enter_ns;     /* bpf_ktime_get_ns() at syscall enter */
	__u64 cgroup_id;    /* cgroup v2 id of the task */
	__u64 sock_id;      /* socket inode number: the connection identity */
	__u32 tgid;         /* process id */
	__u32 tid;          /* thread id */
	__u32 ppid;         /* parent process id (real_parent->tgid) */
	__u32 uid;          /* real uid */
	__u32 len;          /* true number of bytes the syscall moved */
	__u32 cap_len;      /* bytes of payload that follow this header */
	__u32 seq;          /* TCP sequence number of the first byte (see above) */
	__u32 fd;           /* file descriptor in the process */
	__u8 saddr[16];     /* local address (IPv4 in the first 4 bytes) */
	__u8 daddr[16];     /* remote address (IPv4 in the first 4 bytes) */
	__u16 sport;        /* local port, host byte order */
	__u16 dport;        /* remote port, host byte order */
	__u8 kind;          /* enum pbe_kind */
	__u8 dir;           /* enum pbe_dir (DATA only) */
	__u8 family;        /* PBE_AF_INET or PBE_AF_INET6 */
	__u8 source;        /* enum pbe_source */
	char comm[16];      /* task comm */
	__u32 netns;        /* network namespace inode of the socket */
	__u32 tail_len;     /* the last tail_len payload bytes are the event's last bytes */
};

#define PBE_EVENT_HEADER_SIZE 128
PBE_STATIC_ASSERT(sizeof(struct pbe_event) == PBE_EVENT_HEADER_SIZE, "abi: pbe_event");

/* Indices of the per-CPU counters array. */
enum pbe_counter {
	PBE_CNT_EVENTS = 0,        /* events written to the ring buffer */
	PBE_CNT_RINGBUF_DROPS = 1, /* events lost: ring buffer full */
	PBE_CNT_TRUNCATED = 2,     /* DATA events whose payload was cut (cap_len < len; not shadowed sockets') */
	PBE_CNT_BYTES = 3,         /* payload bytes written to the ring buffer */
	PBE_CNT_INFLIGHT_FULL = 4, /* syscalls not traced: in-flight map full */
	PBE_CNT_READ_ERRORS = 5,   /* payload copies from user memory that failed */
	PBE_CNT_FILTERED = 6,      /* socket syscalls dropped by the port/pid filter */
	PBE_CNT__MAX = 7,
};

/* Value of the in-flight map: arguments stashed at syscall enter. */
struct pbe_inflight {
	__u64 enter_ns;
	__u64 buf;     /* user pointer: data buffer, iovec array or msghdr */
	__u64 sk;      /* struct sock * resolved at enter */
	__u64 sock_id; /* socket inode */
	__u32 fd;
	__u32 iovcnt;
	__u8 source;   /* enum pbe_source */
	__u8 dir;
	__u8 headless; /* 1: emit without payload (PBE_VERDICT_SHADOW) */
	__u8 _pad[1];
	__u32 seq;     /* TCP sequence number of the first byte, read at enter (see pbe_event) */
};
PBE_STATIC_ASSERT(sizeof(struct pbe_inflight) == 48, "abi: pbe_inflight");

/*
 * Content inference for sockets on ports nobody configured: the data events
 * of such a socket go to user space, which looks at the first bytes and writes
 * a verdict (keyed by socket inode) back: track it from now on, or ignore it
 * (then it costs one map lookup per syscall). PBE_INFER_EVENTS bounds what an
 * undecided socket may send while the verdict is on its way (a drain period):
 * large enough that a decided socket loses nothing of its first exchanges.
 */
#define PBE_INFER_EVENTS 64
#define PBE_MAX_VERDICTS 65536
enum pbe_verdict_kind {
	PBE_VERDICT_UNDECIDED = 0,
	PBE_VERDICT_TRACK = 1,
	PBE_VERDICT_IGNORE = 2,
	/*
	 * Both ends of this connection are traced and user space parses the
	 * other end: data events of this socket carry no payload (only len, seq
	 * and times, for the server-side timing). Also set on configured ports.
	 */
	PBE_VERDICT_SHADOW = 3,
};

struct pbe_verdict {
	__u8 verdict; /* enum pbe_verdict_kind */
	__u8 events;  /* data events sent while undecided */
	__u8 _pad[6];
};
PBE_STATIC_ASSERT(sizeof(struct pbe_verdict) == 8, "abi: pbe_verdict");

/* Values of the ports map: which protocol a port belongs to (user-side ids). */
struct pbe_port_value {
	__u8 protocol;
	__u8 _pad[3];
};

#endif /* PBE_CAPTURE_H */
