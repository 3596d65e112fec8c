/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole kernel <-> user contract of the `packet` capture mode: a socket
 * filter on an AF_PACKET socket that keeps the TCP packets of the configured
 * ports and copies their heads into a ring buffer. Included by packet.bpf.c
 * (kernel) and addon/packet.cc (user). Fixed-width types only, largest fields
 * first, explicit padding. No CO-RE and no vmlinux.h: this mode must load on
 * kernels built without BTF.
 */
#ifndef PBE_PACKET_H
#define PBE_PACKET_H

#include <linux/types.h>

#ifdef __cplusplus
#define PBE_PKT_STATIC_ASSERT static_assert
#else
#define PBE_PKT_STATIC_ASSERT _Static_assert
#endif

/* Largest TCP payload head one record carries (max_payload is clamped to it). */
#define PBE_PKT_PAYLOAD_LIMIT 16384
/*
 * Room for the network and transport headers copied before the payload head
 * (IPv4 60 + TCP 60 at most; IPv6 40 + extension headers): headers longer than
 * this eat into the payload head.
 */
#define PBE_PKT_HEADROOM 256
/*
 * When a packet's payload is longer than the head, its last PBE_PKT_TAIL_LIMIT
 * bytes are copied too (after the head, counted in cap_len and tail_len): on
 * loopback and with GSO/GRO one packet can hold 64 KiB, and its end often
 * frames the next message (the last chunk of a chunked body).
 */
#define PBE_PKT_TAIL_LIMIT 256
/* Entries of the port filter. */
#define PBE_PKT_MAX_PORTS 256
/* Extension headers walked in an IPv6 packet before giving up on it. */
#define PBE_PKT_MAX_IPV6_EXT 4
/* The loopback device's ifindex, in every network namespace. */
#define PBE_PKT_LOOPBACK_IFINDEX 1

/*
 * One record in the ring buffer, followed by cap_len bytes of the packet from
 * its network header on: the first (cap_len - tail_len) bytes (IP and TCP
 * headers, then the payload head), then, when the packet was longer, its last
 * tail_len bytes (the bytes between are a gap).
 */
struct pbe_packet {
	__u64 ts_ns;        /* bpf_ktime_get_ns() when the filter ran (CLOCK_MONOTONIC) */
	__u32 len;          /* bytes of the packet from the network header (skb->len) */
	__u32 cap_len;      /* bytes that follow this header */
	__u32 tail_len;     /* the last tail_len bytes of them are the packet's last bytes */
	__u32 ifindex;      /* interface it was seen on */
	__u16 protocol;     /* ethertype of the packet, host byte order */
	__u16 vlan_tci;     /* VLAN tag the kernel holds outside the data (vlan_present) */
	__u8 pkt_type;      /* PACKET_HOST, PACKET_OUTGOING, ... (linux/if_packet.h) */
	__u8 vlan_present;  /* 1: vlan_tci is valid */
	__u8 _pad[2];
};

#define PBE_PKT_HEADER_SIZE 32
PBE_PKT_STATIC_ASSERT(sizeof(struct pbe_packet) == PBE_PKT_HEADER_SIZE, "abi: pbe_packet");

/* Indices of the per-CPU counters array. */
enum pbe_pkt_counter {
	PBE_PKT_CNT_PACKETS = 0,       /* records written to the ring buffer */
	PBE_PKT_CNT_RINGBUF_DROPS = 1, /* packets lost: ring buffer full */
	PBE_PKT_CNT_TRUNCATED = 2,     /* records whose payload was cut (head + tail < payload) */
	PBE_PKT_CNT_BYTES = 3,         /* bytes written after the record headers */
	PBE_PKT_CNT_SEEN = 4,          /* packets the filter ran on */
	PBE_PKT_CNT_FILTERED = 5,      /* TCP packets of no configured port */
	PBE_PKT_CNT_NOT_TCP = 6,       /* not IPv4/IPv6 TCP */
	PBE_PKT_CNT_LOOPBACK_DUPS = 7, /* loopback's outgoing copy (the incoming one is kept) */
	PBE_PKT_CNT_PURE_ACKS = 8,     /* TCP packets with no payload and no SYN/FIN/RST */
	PBE_PKT_CNT_FRAGMENTS = 9,     /* IP fragments after the first (no TCP header to read) */
	PBE_PKT_CNT_MALFORMED = 10,    /* headers shorter than they claim, unreadable */
	PBE_PKT_CNT__MAX = 11,
};

/* Values of the ports map: which protocol a port belongs to (user-side ids). */
struct pbe_pkt_port_value {
	__u8 protocol;
	__u8 _pad[3];
};
PBE_PKT_STATIC_ASSERT(sizeof(struct pbe_pkt_port_value) == 4, "abi: pbe_pkt_port_value");

#endif /* PBE_PACKET_H */
