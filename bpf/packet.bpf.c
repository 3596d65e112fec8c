// SPDX-License-Identifier: GPL-2.0
/*
 * packet capture mode: a socket filter (BPF_PROG_TYPE_SOCKET_FILTER) on an
 * AF_PACKET socket. It keeps the TCP packets to or from a configured port and
 * copies their heads (IP and TCP headers, payload head, payload tail) into a
 * BPF ring buffer, then returns 0: the socket itself queues nothing.
 *
 * Why a ring buffer written by the filter rather than a snap length and a
 * PACKET_MMAP/TPACKET_V3 ring read by user space:
 *  - the agent drains it with the same batch/libuv-poll code as the syscall
 *    mode, and the records carry bpf_ktime_get_ns() (CLOCK_MONOTONIC), the
 *    clock every other event and the pipeline's timers use; TPACKET stamps
 *    packets with the wall clock;
 *  - the filter picks each record's size: a 66-byte ACK does not take a
 *    snaplen-sized frame, and a 64 KiB loopback/GSO packet gives its head and
 *    its tail (a snap length can only give a head);
 *  - pure ACKs, the other interfaces' traffic and the other ports cost one
 *    program run and no copy; the socket's receive queue stays empty, so the
 *    only loss is a full ring buffer, and it is counted here.
 * What it costs: AF_PACKET clones every outgoing packet of the host for its
 * taps before any filter runs (true of TPACKET as well).
 *
 * No vmlinux.h and no CO-RE: only the __sk_buff context and packet bytes are
 * read, so this object loads on kernels without BTF.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "packet.h"

char LICENSE[] SEC("license") = "GPL";

/* Tunables, set by the loader before load. */
const volatile __u32 max_payload = 4096;        /* payload head per packet */
const volatile __u64 wakeup_bytes = 256 * 1024; /* wake user space past this */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PBE_PKT_MAX_PORTS);
	__type(key, __u16);
	__type(value, struct pbe_pkt_port_value);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PBE_PKT_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86dd
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88a8
#define PACKET_OUTGOING_ 4
#define IPPROTO_TCP_ 6
#define IPV6_HOPOPTS_ 0
#define IPV6_ROUTING_ 43
#define IPV6_FRAGMENT_ 44
#define IPV6_DSTOPTS_ 60
#define TCP_FIN_ 0x01
#define TCP_SYN_ 0x02
#define TCP_RST_ 0x04

/* lo <= v <= hi in a form the verifier sees (clang may otherwise drop the checks). */
static __always_inline __u64 clamp(__u64 v, const __u64 lo, const __u64 hi)
{
	asm volatile("if %0 >= %1 goto +1\n\t%0 = %1\n\t"
		     "if %0 <= %2 goto +1\n\t%0 = %2"
		     : "+r"(v)
		     : "i"(lo), "i"(hi));
	return v;
}

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += n;
}

/* What the header parse learnt about a kept packet. */
struct parsed {
	__u32 hdr_len; /* IP + TCP headers */
	__u32 ip_len;  /* bytes of the IP packet (its own length, else what was seen) */
	__u8 flags;    /* TCP flags */
};

static __always_inline __u64 wake_flags(__u8 tcp_flags)
{
	/* a new connection wakes the agent at once: the sooner it looks, the more
	 * short-lived sockets it still finds in /proc to name their process */
	if (tcp_flags & TCP_SYN_)
		return BPF_RB_FORCE_WAKEUP;
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
}

/*
 * One record with room for `room` bytes of head (a constant in every inlined
 * copy, so the verifier knows the bounds) and, with `with_tail`, for
 * PBE_PKT_TAIL_LIMIT bytes of tail.
 */
static __always_inline void emit_sized(struct __sk_buff *skb, struct parsed *p, __u32 head,
				       __u32 tail, const __u32 room, const int with_tail)
{
	__u32 size = sizeof(struct pbe_packet) + room + (with_tail ? PBE_PKT_TAIL_LIMIT : 0);
	struct pbe_packet *r = bpf_ringbuf_reserve(&events, size, 0);
	__u8 *data;
	__u64 n, t = 0;

	if (!r) {
		count(PBE_PKT_CNT_RINGBUF_DROPS, 1);
		return;
	}
	data = (__u8 *)(r + 1);
	n = clamp(head, 1, room);
	if (bpf_skb_load_bytes(skb, 0, data, n)) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		count(PBE_PKT_CNT_MALFORMED, 1);
		return;
	}
	if (with_tail && tail > 0) {
		__u64 want = clamp(tail, 1, PBE_PKT_TAIL_LIMIT);
		__u64 off = clamp(n, 1, room);
		if (bpf_skb_load_bytes(skb, p->ip_len - want, data + off, want) == 0)
			t = want;
	}
	r->ts_ns = bpf_ktime_get_ns();
	r->len = p->ip_len;
	r->cap_len = n + t;
	r->tail_len = t;
	r->ifindex = skb->ifindex;
	r->protocol = bpf_ntohs((__u16)skb->protocol);
	r->vlan_tci = skb->vlan_tci;
	r->pkt_type = skb->pkt_type;
	r->vlan_present = skb->vlan_present ? 1 : 0;
	r->_pad[0] = 0;
	r->_pad[1] = 0;
	if (n + t < p->ip_len)
		count(PBE_PKT_CNT_TRUNCATED, 1);
	count(PBE_PKT_CNT_PACKETS, 1);
	count(PBE_PKT_CNT_BYTES, n + t);
	bpf_ringbuf_submit(r, wake_flags(p->flags));
}

/* Pick the smallest record that holds the head (and the tail). */
static __always_inline void emit(struct __sk_buff *skb, struct parsed *p)
{
	__u32 limit = max_payload > PBE_PKT_PAYLOAD_LIMIT ? PBE_PKT_PAYLOAD_LIMIT : max_payload;
	__u32 payload = p->ip_len - p->hdr_len;
	__u32 head = p->hdr_len + (payload > limit ? limit : payload);
	__u32 tail = 0;

	if (payload > limit) {
		tail = payload - limit;
		if (tail > PBE_PKT_TAIL_LIMIT)
			tail = PBE_PKT_TAIL_LIMIT;
		if (head <= 2048)
			emit_sized(skb, p, head, tail, 2048, 1);
		else if (head <= 4096 + PBE_PKT_HEADROOM)
			emit_sized(skb, p, head, tail, 4096 + PBE_PKT_HEADROOM, 1);
		else if (head <= 8192 + PBE_PKT_HEADROOM)
			emit_sized(skb, p, head, tail, 8192 + PBE_PKT_HEADROOM, 1);
		else
			emit_sized(skb, p, head, tail, PBE_PKT_PAYLOAD_LIMIT + PBE_PKT_HEADROOM, 1);
	} else if (head <= 128) {
		emit_sized(skb, p, head, 0, 128, 0);
	} else if (head <= 512) {
		emit_sized(skb, p, head, 0, 512, 0);
	} else if (head <= 2048) {
		emit_sized(skb, p, head, 0, 2048, 0);
	} else if (head <= 4096 + PBE_PKT_HEADROOM) {
		emit_sized(skb, p, head, 0, 4096 + PBE_PKT_HEADROOM, 0);
	} else if (head <= 8192 + PBE_PKT_HEADROOM) {
		emit_sized(skb, p, head, 0, 8192 + PBE_PKT_HEADROOM, 0);
	} else {
		emit_sized(skb, p, head, 0, PBE_PKT_PAYLOAD_LIMIT + PBE_PKT_HEADROOM, 0);
	}
}

/* Offset of the TCP header and the IP packet's length; counts and returns <0 when it is none. */
static __always_inline int ip_layer(struct __sk_buff *skb, __u32 *l4, __u32 *ip_len)
{
	__u8 vh;

	if (bpf_skb_load_bytes(skb, 0, &vh, 1))
		return -PBE_PKT_CNT_MALFORMED;
	if (vh >> 4 == 4) {
		struct {
			__u8 vhl, tos;
			__u16 tot_len, id, frag_off;
			__u8 ttl, protocol;
		} ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return -PBE_PKT_CNT_MALFORMED;
		if (ip.protocol != IPPROTO_TCP_)
			return -PBE_PKT_CNT_NOT_TCP;
		if (bpf_ntohs(ip.frag_off) & 0x1fff)
			return -PBE_PKT_CNT_FRAGMENTS;
		*l4 = (ip.vhl & 0x0f) * 4;
		if (*l4 < 20)
			return -PBE_PKT_CNT_MALFORMED;
		/* 0: a TSO/BIG TCP packet longer than 64 KiB; trust the length seen */
		*ip_len = bpf_ntohs(ip.tot_len);
		if (*ip_len == 0 || *ip_len > skb->len)
			*ip_len = skb->len;
		return 0;
	}
	if (vh >> 4 == 6) {
		struct {
			__u32 vtcfl;
			__u16 payload_len;
			__u8 nexthdr, hop_limit;
		} ip6;
		__u8 nh;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -PBE_PKT_CNT_MALFORMED;
		nh = ip6.nexthdr;
		*l4 = 40;
		*ip_len = 40 + bpf_ntohs(ip6.payload_len);
		if (ip6.payload_len == 0 || *ip_len > skb->len)
			*ip_len = skb->len;
#pragma unroll
		for (int i = 0; i < PBE_PKT_MAX_IPV6_EXT; i++) {
			struct {
				__u8 next, hdrlen;
				__u16 frag_off;
			} ext;
			if (nh != IPV6_HOPOPTS_ && nh != IPV6_ROUTING_ && nh != IPV6_DSTOPTS_ &&
			    nh != IPV6_FRAGMENT_)
				break;
			if (bpf_skb_load_bytes(skb, *l4, &ext, sizeof(ext)))
				return -PBE_PKT_CNT_MALFORMED;
			if (nh == IPV6_FRAGMENT_) {
				if (bpf_ntohs(ext.frag_off) & 0xfff8)
					return -PBE_PKT_CNT_FRAGMENTS;
				*l4 += 8;
			} else {
				*l4 += (ext.hdrlen + 1) * 8;
			}
			nh = ext.next;
		}
		if (nh != IPPROTO_TCP_)
			return -PBE_PKT_CNT_NOT_TCP;
		return 0;
	}
	return -PBE_PKT_CNT_NOT_TCP;
}

SEC("socket")
int handle_packet(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs((__u16)skb->protocol);
	struct parsed p = {};
	__u32 l4 = 0, ip_len = 0;
	int err;
	struct {
		__u16 sport, dport;
		__u32 seq, ack;
		__u8 doff, flags;
	} tcp;

	count(PBE_PKT_CNT_SEEN, 1);
	/* loopback shows every packet twice, going out and coming in: keep one */
	if (skb->ifindex == PBE_PKT_LOOPBACK_IFINDEX && skb->pkt_type == PACKET_OUTGOING_) {
		count(PBE_PKT_CNT_LOOPBACK_DUPS, 1);
		return 0;
	}
	/*
	 * The socket is SOCK_DGRAM: the data starts at the network header on every
	 * kind of device. VLAN tags sit outside it (taken out before the taps on
	 * receive, or put in after the network header was set on transmit), so a
	 * VLAN ethertype still has the IP header first.
	 */
	if (proto != ETH_P_IP_ && proto != ETH_P_IPV6_ && proto != ETH_P_8021Q_ && proto != ETH_P_8021AD_) {
		count(PBE_PKT_CNT_NOT_TCP, 1);
		return 0;
	}
	err = ip_layer(skb, &l4, &ip_len);
	if (err < 0) {
		count(-err, 1);
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof(tcp))) {
		count(PBE_PKT_CNT_MALFORMED, 1);
		return 0;
	}
	{
		__u16 sport = bpf_ntohs(tcp.sport);
		__u16 dport = bpf_ntohs(tcp.dport);
		if (!bpf_map_lookup_elem(&ports, &sport) && !bpf_map_lookup_elem(&ports, &dport)) {
			count(PBE_PKT_CNT_FILTERED, 1);
			return 0;
		}
	}
	p.hdr_len = l4 + (tcp.doff >> 4) * 4;
	p.ip_len = ip_len;
	p.flags = tcp.flags;
	if ((tcp.doff >> 4) < 5 || p.hdr_len > ip_len) {
		count(PBE_PKT_CNT_MALFORMED, 1);
		return 0;
	}
	/* no payload and no SYN/FIN/RST: nothing the reassembly needs */
	if (p.hdr_len == ip_len && !(tcp.flags & (TCP_SYN_ | TCP_FIN_ | TCP_RST_))) {
		count(PBE_PKT_CNT_PURE_ACKS, 1);
		return 0;
	}
	emit(skb, &p);
	return 0;
}
