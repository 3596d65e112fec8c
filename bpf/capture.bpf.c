// SPDX-License-Identifier: GPL-2.0
/*
 * syscall capture mode: tracepoints on the socket syscalls. Arguments are
 * stashed at enter (after the fd was resolved to a TCP socket that passes the
 * filters), the data is copied at exit when the real byte count is known.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "capture.h"

char LICENSE[] SEC("license") = "GPL";

/* Tunables, set by the loader before load. */
const volatile __u32 self_tgid = 0;      /* the agent: never traced */
const volatile __u32 max_payload = PBE_PAYLOAD_DEFAULT;
const volatile __u8 filter_pids = 0;     /* 1: only pids in the pids map */
const volatile __u8 all_ports = 0;       /* 1: every TCP port */
const volatile __u8 infer = 0;           /* 1: sample unknown ports for content inference */
const volatile __u64 wakeup_bytes = 256 * 1024; /* wake user space past this */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBE_MAX_INFLIGHT);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct pbe_inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBE_MAX_PORTS);
	__type(key, __u16);
	__type(value, struct pbe_port_value);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBE_MAX_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PBE_MAX_VERDICTS);
	__type(key, __u64); /* socket inode */
	__type(value, struct pbe_verdict);
} verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PBE_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#define S_IFMT_ 00170000
#define S_IFSOCK_ 0140000
#define SOCK_STREAM_ 1
#define IPPROTO_TCP_ 6
#define MSG_PEEK_ 2
#define EINPROGRESS_ 115

/* v <= max in a form the verifier sees (clang may otherwise drop the check). */
static __always_inline __u64 bound(__u64 v, const __u64 max)
{
	asm volatile("if %0 <= %1 goto +1\n\t%0 = %1" : "+r"(v) : "i"(max));
	return v;
}

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += n;
}

/* The pid filter: the agent itself never, and only listed pids when asked. */
static __always_inline int pid_wanted(__u32 tgid)
{
	if (tgid == self_tgid)
		return 0;
	if (filter_pids && !bpf_map_lookup_elem(&pids, &tgid))
		return 0;
	return 1;
}

/* fd of the current task -> struct sock of a TCP socket (v4/v6), or NULL. */
static __always_inline struct sock *fd_to_tcp_sock(__u32 fd, __u64 *ino)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct files_struct *files = BPF_CORE_READ(task, files);
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	struct file **fdarr;
	struct file *f = NULL;
	struct inode *inode;
	struct socket *sock;
	struct sock *sk;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fdarr = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fdarr[fd]);
	if (!f)
		return NULL;
	inode = BPF_CORE_READ(f, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT_) != S_IFSOCK_)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != PBE_AF_INET && family != PBE_AF_INET6)
		return NULL;
	if (BPF_CORE_READ(sk, sk_type) != SOCK_STREAM_ || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP_)
		return NULL;
	*ino = BPF_CORE_READ(inode, i_ino);
	return sk;
}

/* The port filter: the local or the remote port is one of interest. */
static __always_inline int ports_wanted(struct sock *sk)
{
	if (all_ports)
		return 1;
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return bpf_map_lookup_elem(&ports, &lport) || bpf_map_lookup_elem(&ports, &rport);
}

/*
 * The socket filter: a configured port, or (inference on) a socket user space
 * decided to track, or one still undecided that has not used up its samples.
 * `sample` says whether this event may use one of those samples.
 */
static __always_inline int socket_wanted(struct sock *sk, __u64 ino, int sample)
{
	struct pbe_verdict *v;

	if (ports_wanted(sk))
		return 1;
	if (!infer)
		return 0;
	v = bpf_map_lookup_elem(&verdicts, &ino);
	if (!v) {
		struct pbe_verdict nv = {};
		if (!sample)
			return 0;
		nv.events = 1;
		bpf_map_update_elem(&verdicts, &ino, &nv, BPF_NOEXIST);
		return 1;
	}
	if (v->verdict == PBE_VERDICT_TRACK || v->verdict == PBE_VERDICT_SHADOW)
		return 1;
	if (v->verdict == PBE_VERDICT_IGNORE || v->events >= PBE_INFER_EVENTS)
		return 0;
	if (sample)
		v->events++;
	return 1;
}

/* A new socket on an unknown port: undecided, so its first events and its close are seen. */
static __always_inline int start_inference(__u64 ino)
{
	struct pbe_verdict nv = {};

	if (!infer)
		return 0;
	bpf_map_update_elem(&verdicts, &ino, &nv, BPF_ANY);
	return 1;
}

/* Fill the task part of the header: identity, times, comm. */
static __always_inline void fill_task(struct pbe_event *e, __u8 kind, __u64 enter_ns)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->ts_ns = bpf_ktime_get_ns();
	e->enter_ns = enter_ns ? enter_ns : e->ts_ns;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->sock_id = 0;
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->len = 0;
	e->cap_len = 0;
	e->seq = 0;
	e->fd = 0;
	e->kind = kind;
	e->dir = 0;
	e->source = PBE_SRC_NONE;
	e->family = 0;
	e->sport = 0;
	e->dport = 0;
	e->netns = 0;
	e->tail_len = 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

/* Fill the fixed header: task identity, socket identity and 4-tuple. */
static __always_inline void fill_header(struct pbe_event *e, struct sock *sk, __u64 sock_id,
					__u32 fd, __u8 kind, __u64 enter_ns)
{
	fill_task(e, kind, enter_ns);
	e->sock_id = sock_id;
	e->fd = fd;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->family == PBE_AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u64 wake_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
}

/* A header-only event (connect, accept, close). */
static __always_inline void emit_conn_event(struct sock *sk, __u64 sock_id, __u32 fd, __u8 kind,
					    __u64 enter_ns)
{
	struct pbe_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(PBE_CNT_RINGBUF_DROPS, 1);
		return;
	}
	fill_header(e, sk, sock_id, fd, kind, enter_ns);
	/* First sequence numbers of both directions, so positions start at 0. */
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	if (kind == PBE_KIND_CONNECT)
		e->seq = BPF_CORE_READ(tp, write_seq);
	else if (kind == PBE_KIND_ACCEPT)
		e->seq = BPF_CORE_READ(tp, copied_seq);
	count(PBE_CNT_EVENTS, 1);
	bpf_ringbuf_submit(e, wake_flags());
}

/*
 * Find where the last *want of `len` bytes start in an iovec array. The tail
 * is taken from the iovec holding the last byte only, so *want shrinks to
 * what that iovec holds (a chunked terminator is often an iovec of its own).
 */
static __always_inline int iov_tail(struct pbe_inflight *st, __u32 len, __u64 *want, __u64 *src)
{
	struct iovec iov;
	__u64 seen = 0;
	__u32 iovcnt = st->iovcnt;

	for (int i = 0; i < PBE_MAX_IOV_TAIL; i++) {
		if (i >= iovcnt)
			return 0;
		if (bpf_probe_read_user(&iov, sizeof(iov), (struct iovec *)st->buf + i))
			return 0;
		seen += iov.iov_len;
		if (seen >= len) {
			/* the data ends in this iovec */
			__u64 end_in_iov = iov.iov_len - (seen - len);
			if (end_in_iov < *want)
				*want = end_in_iov;
			if (*want == 0)
				return 0;
			*src = (__u64)iov.iov_base + end_in_iov - *want;
			return 1;
		}
	}
	return 0;
}

/*
 * A DATA event whose record has room for `room` payload bytes (a constant in
 * every inlined copy, so the verifier knows the bounds). Plain buffers copy
 * cap bytes; vectored I/O copies the first iovecs and needs 2*room of space
 * (offset < room, chunk <= room). `tail` adds PBE_TAIL_LIMIT bytes of room
 * for the last bytes of data longer than the head.
 */
static __always_inline void emit_data_sized(struct pbe_inflight *st, __u32 len, __u32 cap,
					    const __u32 room, int vectored, int tail)
{
	__u32 size = sizeof(struct pbe_event) + (vectored ? 2 * room : room) + (tail ? PBE_TAIL_LIMIT : 0);
	struct pbe_event *e = bpf_ringbuf_reserve(&events, size, 0);
	struct sock *sk = (struct sock *)st->sk;
	__u8 *data;
	__u32 copied = 0;
	__u32 tail_len = 0;

	if (!e) {
		count(PBE_CNT_RINGBUF_DROPS, 1);
		return;
	}
	fill_header(e, sk, st->sock_id, st->fd, PBE_KIND_DATA, st->enter_ns);
	e->dir = st->dir;
	e->source = st->source;
	e->len = len;
	e->seq = st->seq;
	data = (__u8 *)(e + 1);

	if (!vectored) {
		__u64 n = bound(cap, room);
		if (n > 0) {
			if (bpf_probe_read_user(data, n, (void *)st->buf) == 0)
				copied = n;
			else
				count(PBE_CNT_READ_ERRORS, 1);
		}
	} else {
		struct iovec iov;
		__u32 iovcnt = st->iovcnt;
		for (int i = 0; i < PBE_MAX_IOV; i++) {
			if (i >= iovcnt || copied >= cap)
				break;
			if (bpf_probe_read_user(&iov, sizeof(iov), (struct iovec *)st->buf + i)) {
				count(PBE_CNT_READ_ERRORS, 1);
				break;
			}
			__u64 chunk = (__u64)iov.iov_len;
			if (chunk > cap - copied)
				chunk = cap - copied;
			__u32 off = copied & (room - 1);
			chunk = bound(chunk, room);
			if (chunk == 0)
				continue;
			if (bpf_probe_read_user(data + off, chunk, iov.iov_base)) {
				count(PBE_CNT_READ_ERRORS, 1);
				break;
			}
			copied += chunk;
		}
	}
	/* the tail only when the head is whole (cap bytes) and the data goes on */
	if (tail && copied == cap && len > cap) {
		__u64 want = len - cap;
		__u64 src = 0;
		want = bound(want, PBE_TAIL_LIMIT);
		if (vectored ? iov_tail(st, len, &want, &src) : (src = st->buf + len - want, 1)) {
			__u64 off = bound(copied, vectored ? 2 * room : room);
			__u64 n = bound(want, PBE_TAIL_LIMIT);
			if (n > 0 && bpf_probe_read_user(data + off, n, (void *)src) == 0)
				tail_len = n;
		}
	}
	e->cap_len = copied + tail_len;
	e->tail_len = tail_len;
	/* a shadowed socket's payload is left out on purpose: not a cut */
	if (copied + tail_len < len && !st->headless)
		count(PBE_CNT_TRUNCATED, 1);
	count(PBE_CNT_EVENTS, 1);
	count(PBE_CNT_BYTES, copied + tail_len);
	bpf_ringbuf_submit(e, wake_flags());
}

/* Pick the smallest record that holds the payload head (and the tail). */
static __always_inline void emit_data(struct pbe_inflight *st, __u32 len, int vectored)
{
	__u32 cap = len;
	__u32 limit = max_payload;

	if (limit > PBE_PAYLOAD_LIMIT)
		limit = PBE_PAYLOAD_LIMIT;
	if (cap > limit)
		cap = limit;
	if (st->source == PBE_SRC_SENDFILE || st->headless || cap == 0)
		emit_data_sized(st, len, 0, 0, 0, 0);
	else if (len > cap) /* cut: cap == limit, a top bucket with a tail */
		if (cap <= 2048)
			emit_data_sized(st, len, cap, 2048, vectored, 1);
		else if (cap <= 4096)
			emit_data_sized(st, len, cap, 4096, vectored, 1);
		else if (cap <= 8192)
			emit_data_sized(st, len, cap, 8192, vectored, 1);
		else
			emit_data_sized(st, len, cap, PBE_PAYLOAD_LIMIT, vectored, 1);
	else if (cap <= 128)
		emit_data_sized(st, len, cap, 128, vectored, 0);
	else if (cap <= 512)
		emit_data_sized(st, len, cap, 512, vectored, 0);
	else if (cap <= 2048)
		emit_data_sized(st, len, cap, 2048, vectored, 0);
	else if (cap <= 4096)
		emit_data_sized(st, len, cap, 4096, vectored, 0);
	else if (cap <= 8192)
		emit_data_sized(st, len, cap, 8192, vectored, 0);
	else
		emit_data_sized(st, len, cap, PBE_PAYLOAD_LIMIT, vectored, 0);
}

/* Syscall enter for data: resolve the fd, filter, stash the arguments. */
static __always_inline int stash(__u32 fd, __u64 buf, __u32 iovcnt, __u8 source, __u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pbe_inflight st = {};
	struct sock *sk;
	__u64 ino = 0;

	if (!pid_wanted(pid_tgid >> 32))
		return 0;
	sk = fd_to_tcp_sock(fd, &ino);
	if (!sk)
		return 0;
	if (!socket_wanted(sk, ino, 1)) {
		count(PBE_CNT_FILTERED, 1);
		return 0;
	}
	/* the other end of this connection is parsed: positions and times suffice */
	struct pbe_verdict *v = bpf_map_lookup_elem(&verdicts, &ino);
	if (v && v->verdict == PBE_VERDICT_SHADOW)
		st.headless = 1;
	st.enter_ns = bpf_ktime_get_ns();
	st.buf = buf;
	st.sk = (__u64)sk;
	st.sock_id = ino;
	st.fd = fd;
	st.iovcnt = iovcnt;
	st.source = source;
	st.dir = dir;
	/* the next byte to send or to read: the first byte this call moves */
	st.seq = dir == PBE_DIR_EGRESS ? BPF_CORE_READ((struct tcp_sock *)sk, write_seq)
				       : BPF_CORE_READ((struct tcp_sock *)sk, copied_seq);
	if (bpf_map_update_elem(&inflight, &pid_tgid, &st, BPF_ANY))
		count(PBE_CNT_INFLIGHT_FULL, 1);
	return 0;
}

/* Syscall exit for data: emit what the syscall really moved. */
static __always_inline int finish(long ret, int vectored)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pbe_inflight *st = bpf_map_lookup_elem(&inflight, &pid_tgid);

	if (!st)
		return 0;
	if (ret > 0)
		emit_data(st, (__u32)ret, vectored);
	else if (ret == 0 && st->dir == PBE_DIR_INGRESS)
		emit_data(st, 0, 0); /* end of stream from the peer */
	bpf_map_delete_elem(&inflight, &pid_tgid);
	return 0;
}

/*
 * One body per syscall, called from three kinds of hooks (the capture modes):
 *   syscall: tracepoints syscalls/sys_{enter,exit}_<name>
 *   fentry:  fentry/fexit on the syscall's entry function (__x64_sys_<name>)
 *   kprobe:  kprobe/kretprobe on the same function (libbpf's ksyscall)
 * The loader keeps only one mode's programs, so the events are identical.
 * Arguments arrive as raw 64-bit values a0..a3.
 */
#define U64 __u64

static __always_inline int enter_read(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash(a0, a1, 0, PBE_SRC_READ, PBE_DIR_INGRESS);
}
static __always_inline int exit_read(long ret) { return finish(ret, 0); }

static __always_inline int enter_write(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash(a0, a1, 0, PBE_SRC_WRITE, PBE_DIR_EGRESS);
}
static __always_inline int exit_write(long ret) { return finish(ret, 0); }

static __always_inline int enter_recvfrom(U64 a0, U64 a1, U64 a2, U64 a3)
{
	if (a3 & MSG_PEEK_)
		return 0; /* peeked bytes are read again later */
	return stash(a0, a1, 0, PBE_SRC_RECVFROM, PBE_DIR_INGRESS);
}
static __always_inline int exit_recvfrom(long ret) { return finish(ret, 0); }

static __always_inline int enter_sendto(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash(a0, a1, 0, PBE_SRC_SENDTO, PBE_DIR_EGRESS);
}
static __always_inline int exit_sendto(long ret) { return finish(ret, 0); }

static __always_inline int enter_readv(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash(a0, a1, a2, PBE_SRC_READV, PBE_DIR_INGRESS);
}
static __always_inline int exit_readv(long ret) { return finish(ret, 1); }

static __always_inline int enter_writev(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash(a0, a1, a2, PBE_SRC_WRITEV, PBE_DIR_EGRESS);
}
static __always_inline int exit_writev(long ret) { return finish(ret, 1); }

/* msghdr: the iovec array and its length live in user memory. */
static __always_inline int stash_msg(U64 fd, U64 msgp, U64 flags, __u8 source, __u8 dir)
{
	struct user_msghdr msg = {};

	if (dir == PBE_DIR_INGRESS && (flags & MSG_PEEK_))
		return 0;
	if (bpf_probe_read_user(&msg, sizeof(msg), (void *)msgp))
		return 0;
	return stash(fd, (__u64)msg.msg_iov, (__u32)msg.msg_iovlen, source, dir);
}

static __always_inline int enter_recvmsg(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash_msg(a0, a1, a2, PBE_SRC_RECVMSG, PBE_DIR_INGRESS);
}
static __always_inline int exit_recvmsg(long ret) { return finish(ret, 1); }

static __always_inline int enter_sendmsg(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash_msg(a0, a1, a2, PBE_SRC_SENDMSG, PBE_DIR_EGRESS);
}
static __always_inline int exit_sendmsg(long ret) { return finish(ret, 1); }

/* sendfile: no payload to copy, but the stream moves (data-less event). */
static __always_inline int enter_sendfile64(U64 a0, U64 a1, U64 a2, U64 a3)
{
	return stash(a0, 0, 0, PBE_SRC_SENDFILE, PBE_DIR_EGRESS);
}
static __always_inline int exit_sendfile64(long ret) { return finish(ret, 0); }

/* connect: the fd is stashed at enter, the socket read at exit. */
static __always_inline int enter_connect(U64 a0, U64 a1, U64 a2, U64 a3)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pbe_inflight st = {};

	if (!pid_wanted(pid_tgid >> 32))
		return 0;
	st.enter_ns = bpf_ktime_get_ns();
	st.fd = a0;
	if (bpf_map_update_elem(&inflight, &pid_tgid, &st, BPF_ANY))
		count(PBE_CNT_INFLIGHT_FULL, 1);
	return 0;
}

static __always_inline int exit_connect(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pbe_inflight *st = bpf_map_lookup_elem(&inflight, &pid_tgid);
	struct sock *sk;
	__u64 ino = 0;

	if (!st)
		return 0;
	if (ret == 0 || ret == -EINPROGRESS_) {
		sk = fd_to_tcp_sock(st->fd, &ino);
		if (sk && (ports_wanted(sk) || start_inference(ino)))
			emit_conn_event(sk, ino, st->fd, PBE_KIND_CONNECT, st->enter_ns);
	}
	bpf_map_delete_elem(&inflight, &pid_tgid);
	return 0;
}

/* accept/accept4: the new fd is the return value. */
static __always_inline int exit_accept(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct sock *sk;
	__u64 ino = 0;

	if (ret < 0 || !pid_wanted(pid_tgid >> 32))
		return 0;
	sk = fd_to_tcp_sock((__u32)ret, &ino);
	if (sk && (ports_wanted(sk) || start_inference(ino)))
		emit_conn_event(sk, ino, (__u32)ret, PBE_KIND_ACCEPT, 0);
	return 0;
}
static __always_inline int exit_accept4(long ret) { return exit_accept(ret); }

/* close: resolved at enter, while the fd still points at the socket. */
static __always_inline int enter_close(U64 a0, U64 a1, U64 a2, U64 a3)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct sock *sk;
	__u64 ino = 0;
	__u32 fd = a0;

	if (!pid_wanted(pid_tgid >> 32))
		return 0;
	sk = fd_to_tcp_sock(fd, &ino);
	if (!sk)
		return 0;
	if (socket_wanted(sk, ino, 0))
		emit_conn_event(sk, ino, fd, PBE_KIND_CLOSE, 0);
	bpf_map_delete_elem(&verdicts, &ino); /* the inode may be reused */
	return 0;
}

/* syscall mode: tracepoints. */
#define TP_ENTER(name)                                                                             \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int handle_enter_##name(struct trace_event_raw_sys_enter *ctx)                             \
	{                                                                                          \
		return enter_##name(ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3]);       \
	}
#define TP_EXIT(name)                                                                              \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                 \
	int handle_exit_##name(struct trace_event_raw_sys_exit *ctx)                               \
	{                                                                                          \
		return exit_##name(ctx->ret);                                                      \
	}

/*
 * fentry mode: BPF trampolines on the syscall entry function, whose one
 * argument is the user's saved registers (the syscall-wrapper convention of
 * x86_64 since 4.17; the 4th syscall argument is in r10).
 */
#define SYSCALL_FN(name) "__x64_sys_" #name
#define FENTRY(name)                                                                               \
	SEC("fentry/" SYSCALL_FN(name))                                                            \
	int BPF_PROG(fentry_enter_##name, const struct pt_regs *regs)                              \
	{                                                                                          \
		return enter_##name(PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs), \
				    PT_REGS_PARM3_CORE_SYSCALL(regs), PT_REGS_PARM4_CORE_SYSCALL(regs)); \
	}
#define FEXIT(name)                                                                                \
	SEC("fexit/" SYSCALL_FN(name))                                                             \
	int BPF_PROG(fexit_exit_##name, const struct pt_regs *regs, long ret)                      \
	{                                                                                          \
		return exit_##name(ret);                                                           \
	}

/* kprobe mode: kprobe/kretprobe on the same function (libbpf finds its name). */
#define KPROBE(name)                                                                               \
	SEC("ksyscall/" #name)                                                                     \
	int BPF_KSYSCALL(kprobe_enter_##name, U64 a0, U64 a1, U64 a2, U64 a3)                      \
	{                                                                                          \
		return enter_##name(a0, a1, a2, a3);                                               \
	}
#define KRETPROBE(name)                                                                            \
	SEC("kretsyscall/" #name)                                                                  \
	int BPF_KRETPROBE(kprobe_exit_##name, long ret)                                            \
	{                                                                                          \
		return exit_##name(ret);                                                           \
	}

#define HOOK_ENTER(name) TP_ENTER(name) FENTRY(name) KPROBE(name)
#define HOOK_EXIT(name) TP_EXIT(name) FEXIT(name) KRETPROBE(name)
#define HOOK_BOTH(name) HOOK_ENTER(name) HOOK_EXIT(name)

HOOK_BOTH(read)
HOOK_BOTH(write)
HOOK_BOTH(recvfrom)
HOOK_BOTH(sendto)
HOOK_BOTH(readv)
HOOK_BOTH(writev)
HOOK_BOTH(recvmsg)
HOOK_BOTH(sendmsg)
HOOK_BOTH(sendfile64)
HOOK_BOTH(connect)
HOOK_EXIT(accept)
HOOK_EXIT(accept4)
HOOK_ENTER(close)

/* exec: the new program's path and argv, while the process surely exists. */
SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct pbe_event *e;
	__u8 *data;
	__u64 arg_start, arg_end, n;

	if (!pid_wanted(pid_tgid >> 32))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e) + PBE_EXEC_FILENAME + PBE_EXEC_ARGS, 0);
	if (!e) {
		count(PBE_CNT_RINGBUF_DROPS, 1);
		return 0;
	}
	fill_task(e, PBE_KIND_EXEC, 0);
	data = (__u8 *)(e + 1);
	data[0] = 0;
	bpf_probe_read_kernel_str(data, PBE_EXEC_FILENAME, (void *)ctx + (ctx->__data_loc_filename & 0xFFFF));
	task = (struct task_struct *)bpf_get_current_task();
	arg_start = BPF_CORE_READ(task, mm, arg_start);
	arg_end = BPF_CORE_READ(task, mm, arg_end);
	n = arg_end > arg_start ? arg_end - arg_start : 0;
	e->len = n;
	n = bound(n, PBE_EXEC_ARGS);
	if (n > 0 && bpf_probe_read_user(data + PBE_EXEC_FILENAME, n, (void *)arg_start))
		n = 0;
	e->cap_len = PBE_EXEC_FILENAME + n;
	count(PBE_CNT_EVENTS, 1);
	bpf_ringbuf_submit(e, wake_flags());
	return 0;
}
