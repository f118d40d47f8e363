// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel tap, two data paths chosen per target process (the `targets` map value):
 *  - plaintext (TAP_TARGET_PLAIN): uprobes on the TLS library's read and write functions deliver
 *    the plaintext each call moved; syscall tracepoints tie calls to sockets and sockets to peers.
 *  - keys (TAP_TARGET_CIPHER): BTF tracepoints on socket I/O deliver the bytes of the target's
 *    TCP sockets as they went on the wire, and uprobes that fire once per handshake deliver its
 *    secrets (OpenSSL: read from the SSL object; Go: (*Config).writeKeyLog); userspace decrypts.
 * Userspace attaches the OpenSSL uprobes once per library file for all processes (the programs
 * filter on `targets`), Go's per target process, and fills `targets` and the layouts.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "mke_audit_tap/tap_events.h"

char LICENSE[] SEC("license") = "GPL";

/* Payload bytes delivered per SSL call; the rest is counted as truncated. Set before load. */
const volatile __u32 cap_bytes = TAP_DEFAULT_CAP;
/* Socket bytes delivered per socket call (keys path); the rest is counted as truncated. */
const volatile __u32 cipher_cap_bytes = 256 << 10;
/*
 * Userspace drains the ring on a short timer; a record wakes it early only once this many
 * bytes are waiting. Waking the reader on every record costs the audited process an
 * interrupt per TLS call, which in a VM is the largest part of the probes' cost.
 */
const volatile __u32 wakeup_bytes = 1 << 20;

struct targets_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TAP_MAX_TARGETS);
	__type(key, __u32);  /* tgid */
	__type(value, __u8); /* enum tap_target_mode bits */
} targets SEC(".maps");

/* The calibrated libssl layout of a keys-path target (userspace/tap/ssl_layout). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TAP_MAX_TARGETS);
	__type(key, __u32); /* tgid */
	__type(value, struct tap_ssl_layout);
} ssl_layouts SEC(".maps");

/*
 * The calibrated layout of a libssl file, for the probes attached once per file for every
 * process that maps it (pid -1, filtered here on `targets`): their attach cookie carries the
 * file's number (TAP_COOKIE_FILE_SHIFT), which keys this map. A forked child of a target runs
 * them from its first instruction, with no attach of its own.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TAP_MAX_SHARED_FILES);
	__type(key, __u32); /* file number, from 1 */
	__type(value, struct tap_ssl_layout);
} file_layouts SEC(".maps");

struct inflight {
	__u64 ssl;
	__u64 buf;
	__u64 lenp;
	__s32 fd; /* socket fd seen in a syscall during the call, -1 if none */
	__u32 pad;
};

/*
 * Every hash map the programs fill is LRU: a thread killed inside a call (or in accept) never
 * reaches the return that deletes its entry, and LRU recycles such dead entries first instead of
 * refusing new calls once they fill the map. A live entry evicted that way (more threads in
 * calls than the map holds) is counted at its return as TAP_CNT_UNTRACKED_CALLS.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct inflight);
} inflight SEC(".maps");

struct conn_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct conn_state {
	__u64 pos[2]; /* indexed by enum tap_direction */
	__s32 fd;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TAP_MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

struct sock_key {
	__u32 tgid;
	__s32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TAP_MAX_CONNS);
	__type(key, struct sock_key);
	__type(value, __u8); /* enum tap_sock_role */
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* user pointer to the peer sockaddr */
} accept_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by userspace before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TAP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += n;
}

static __always_inline __u64 rb_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									     : BPF_RB_NO_WAKEUP;
}

/* Any target, whatever it captures. */
static __always_inline bool is_target(__u32 tgid)
{
	return bpf_map_lookup_elem(&targets, &tgid) != 0;
}

/* The process's enum tap_target_mode bits, 0 when it is no target. */
static __always_inline __u8 target_mode(__u32 tgid)
{
	__u8 *mode = bpf_map_lookup_elem(&targets, &tgid);

	return mode ? *mode : 0;
}

/* A target of the per-call plaintext probes and the syscall tracepoints that serve them. */
static __always_inline bool is_plain_target(__u32 tgid)
{
	return target_mode(tgid) & TAP_TARGET_PLAIN;
}

static __always_inline void fill_hdr(struct tap_hdr *h, __u32 type, __u64 pid_tgid, __s32 fd,
				     __u64 conn)
{
	h->type = type;
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->fd = fd;
	h->ts_ns = bpf_ktime_get_ns();
	h->conn = conn;
}

/* ---- socket facts --------------------------------------------------------------------- */

static __always_inline void read_peer(struct tap_sock *ev, __u64 uaddr)
{
	__u16 family = 0;

	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
		return;
	if (family == AF_INET) {
		struct sockaddr_in sin = {};

		if (bpf_probe_read_user(&sin, sizeof(sin), (void *)uaddr))
			return;
		ev->family = AF_INET;
		ev->port = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(ev->addr, &sin.sin_addr, 4);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};

		if (bpf_probe_read_user(&sin6, sizeof(sin6), (void *)uaddr))
			return;
		ev->family = AF_INET6;
		ev->port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(ev->addr, sin6.sin6_addr, 16);
	}
}

/*
 * The endpoints of fd straight from the kernel's socket (current task -> files -> fd ->
 * socket -> sock), for when the sockaddr the program passed is not available.
 */
static __always_inline void read_socket(struct tap_sock *ev, __s32 fd, bool want_peer)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = 0;
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return;
	sock = BPF_CORE_READ(file, private_data);
	sk = sock ? BPF_CORE_READ(sock, sk) : 0;
	if (!sk)
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	ev->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!want_peer)
		return;
	ev->family = family;
	ev->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(ev->addr, &daddr, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

static __always_inline void emit_sock(__u64 id, __s32 fd, __u32 role, __u64 uaddr)
{
	struct sock_key key = {.tgid = id >> 32, .fd = fd};
	struct tap_sock ev = {};
	__u8 r = role;

	fill_hdr(&ev.hdr, TAP_EV_SOCK, id, fd, 0);
	ev.role = role;
	read_peer(&ev, uaddr);
	/* A socket of a TLS call has no sockaddr to hand; accept may have none either. */
	read_socket(&ev, fd, ev.family == 0);
	if (ev.family != AF_INET && ev.family != AF_INET6)
		return; /* not an IP socket (unix, netlink): not ours */
	bpf_map_update_elem(&socks, &key, &r, BPF_ANY);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
}

/* ---- SSL read/write ---------------------------------------------------------------------- */

static __always_inline int call_enter(struct pt_regs *ctx, bool with_lenp)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight call = {};

	if (!is_plain_target(id >> 32))
		return 0;
	call.ssl = PT_REGS_PARM1(ctx);
	call.buf = PT_REGS_PARM2(ctx);
	call.lenp = with_lenp ? PT_REGS_PARM4(ctx) : 0;
	call.fd = -1;
	/* Should the map refuse it, the return finds no entry and counts the call as untracked. */
	bpf_map_update_elem(&inflight, &id, &call, BPF_ANY);
	return 0;
}

/*
 * Sending the bytes one call moved as data records (TAP_EV_DATA or TAP_EV_CIPHER), in chunks of
 * at most TAP_CHUNK_BYTES, from a flat user buffer or an iovec array, in order. One step of the
 * bpf_loop below copies one piece (the part of the current buffer segment that fits in the
 * record), or loads the next iovec; a full record, or the last, is sent.
 */
struct stream_copy {
	/* source */
	__u64 seg;	/* user address of the current segment's next byte */
	__u64 seg_left; /* bytes left in that segment */
	__u64 iov;	/* user address of the next struct iovec */
	__u64 iov_left; /* iovecs left after the current segment */
	/* record */
	__u64 id;
	__u64 conn;
	__u64 pos; /* stream position of the call's first byte */
	__u32 type;
	__u32 call_len; /* bytes the call moved */
	__u32 to_copy;	/* bytes to deliver (call_len or the cap) */
	__u32 done;	/* bytes of the call copied so far */
	__u32 fill;	/* bytes in the record being assembled */
	__s32 fd;
	__u8 dir;
	__u8 pad[7];
};

/*
 * Where a data record is assembled, two per CPU (index: CPU * 2 + slot; userspace sizes the map
 * to twice the possible CPUs), with the state of its copy. The slack after data lets a copy start
 * anywhere in the record and still be bounded for the verifier by one chunk; it makes the value too
 * large for a per-CPU array. The copy's state lives here rather than on the stack so that the
 * verifier sees every step of the loop alike (it does not track map values) and checks the
 * step once, instead of once per value of the counters.
 */
struct chunk_buf {
	struct stream_copy copy;
	struct tap_data ev;
	__u8 slack[TAP_CHUNK_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized by userspace before load */
	__type(key, __u32);
	__type(value, struct chunk_buf);
} chunk_scratch SEC(".maps");

/*
 * A step copies a piece (at most one per record and one per iovec) or loads an iovec (at most
 * UIO_MAXIOV, 1024).
 */
#define STREAM_MAX_STEPS (TAP_MAX_CHUNKS + 2 * 1024 + 1)

/*
 * Which of a CPU's two record buffers: the uprobes' (they run with migration disabled but may
 * be preempted) and the socket tracepoints' (preemption disabled), so that a tracepoint of
 * another task on the CPU never overwrites a copy a preempted uprobe program is making.
 */
#define SLOT_UPROBE 0
#define SLOT_TRACEPOINT 1

static __always_inline struct chunk_buf *chunk_buf(__u32 slot)
{
	__u32 key = bpf_get_smp_processor_id() * 2 + (slot & 1);

	return bpf_map_lookup_elem(&chunk_scratch, &key);
}

/* Sends the record assembled so far (fill bytes, possibly 0 after a fault). */
static __always_inline void stream_flush(struct stream_copy *c, struct chunk_buf *b)
{
	struct tap_data *ev = &b->ev;
	__u64 len = c->fill;
	__u32 offset = c->done - c->fill;

	/* Keeps the bound check on the register the helper call uses. */
	barrier_var(len);
	if (len > TAP_CHUNK_BYTES)
		return;
	fill_hdr(&ev->hdr, c->type, c->id, c->fd, c->conn);
	ev->pos = c->pos + offset;
	ev->call_len = c->call_len;
	ev->offset = offset;
	ev->len = len;
	ev->dir = c->dir;
	if (bpf_ringbuf_output(&events, ev, TAP_DATA_HDR_BYTES + len, rb_flags())) {
		count(TAP_CNT_RINGBUF_DROPS, 1);
		count(TAP_CNT_RINGBUF_DROP_BYTES, len);
	}
	c->fill = 0;
}

static long stream_step(__u32 i, void *slot)
{
	struct chunk_buf *b = chunk_buf(*(__u32 *)slot);
	struct stream_copy *c;
	__u64 n, off;

	if (!b)
		return 1;
	c = &b->copy;
	if (c->done >= c->to_copy)
		return 1;
	if (c->seg_left == 0) {
		struct user_iovec v = {};

		if (c->iov_left == 0) {
			/* The buffers hold fewer bytes than the call moved: the rest is a gap. */
			count(TAP_CNT_READ_FAULTS, 1);
			stream_flush(c, b);
			return 1;
		}
		if (bpf_probe_read_user(&v, sizeof(v), (void *)c->iov)) {
			count(TAP_CNT_READ_FAULTS, 1);
			stream_flush(c, b);
			return 1;
		}
		c->seg = v.base;
		c->seg_left = v.len;
		c->iov += sizeof(v);
		c->iov_left--;
		return 0;
	}
	off = c->fill;
	if (off >= TAP_CHUNK_BYTES)
		return 1;
	n = TAP_CHUNK_BYTES - off;
	if (n > c->seg_left)
		n = c->seg_left;
	if (n > c->to_copy - c->done)
		n = c->to_copy - c->done;
	barrier_var(n);
	if (n == 0 || n > TAP_CHUNK_BYTES)
		return 1;
	if (bpf_probe_read_user(b->ev.data + off, n, (void *)c->seg)) {
		/* The record goes out with what it has; the rest of the call is a gap. */
		count(TAP_CNT_READ_FAULTS, 1);
		stream_flush(c, b);
		return 1;
	}
	c->seg += n;
	c->seg_left -= n;
	c->done += n;
	c->fill += n;
	if (c->fill >= TAP_CHUNK_BYTES || c->done >= c->to_copy)
		stream_flush(c, b);
	return 0;
}

/* Sends c->to_copy bytes of the call from c's source, set by the caller. */
static __always_inline void stream_copy_run(const struct stream_copy *c, __u32 slot)
{
	struct chunk_buf *b = chunk_buf(slot);

	if (!b)
		return;
	b->copy = *c;
	if (c->iov_left == 0 && c->to_copy <= c->seg_left && c->to_copy <= TAP_CHUNK_BYTES) {
		/* The common case, one buffer and one record: no loop. */
		__u64 n = c->to_copy;

		barrier_var(n);
		if (n == 0 || n > TAP_CHUNK_BYTES)
			return;
		if (bpf_probe_read_user(b->ev.data, n, (void *)c->seg)) {
			count(TAP_CNT_READ_FAULTS, 1);
			n = 0; /* still sent: userspace sees the gap */
		}
		b->copy.done = n;
		b->copy.fill = n;
		stream_flush(&b->copy, b);
		return;
	}
	bpf_loop(STREAM_MAX_STEPS, stream_step, &slot, 0);
	/* Out of steps (more iovecs than UIO_MAXIOV): what was assembled goes; the rest is a gap.
	 */
	if (b->copy.done < b->copy.to_copy && b->copy.fill)
		stream_flush(&b->copy, b);
}

/*
 * Delivers `moved` bytes at user address buf that one TLS call moved on connection `connid`
 * (the SSL*, or Go's *tls.Conn) of process id>>32: assigns their stream position and sends
 * them in chunks. callfd is the connection's socket when the call revealed it, else -1.
 */
static __always_inline void deliver(__u64 id, __u64 connid, __s32 callfd, __u64 buf, __u64 moved,
				    __u8 dir)
{
	struct conn_state fresh = {.fd = -1}, *conn;
	struct conn_key key = {.tgid = id >> 32, .ssl = connid};
	struct stream_copy c = {};
	__u64 to_copy, pos;

	if (moved == 0 || moved > 0xffffffffULL)
		return;
	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn) {
		if (bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&conns, &key))
			count(TAP_CNT_CONN_MAP_FULL, 1);
		conn = bpf_map_lookup_elem(&conns, &key);
		if (!conn)
			return;
	}
	if (callfd >= 0 && callfd != conn->fd) {
		struct sock_key skey = {.tgid = key.tgid, .fd = callfd};

		conn->fd = callfd;
		/* A socket not seen being accepted or connected (it predates the auditor). */
		if (!bpf_map_lookup_elem(&socks, &skey))
			emit_sock(id, callfd, TAP_ROLE_UNKNOWN, 0);
	}
	dir &= 1;
	pos = conn->pos[dir];
	conn->pos[dir] = pos + moved;

	count(TAP_CNT_DATA_CALLS, 1);
	count(TAP_CNT_DATA_BYTES, moved);
	to_copy = moved;
	if (to_copy > cap_bytes) {
		count(TAP_CNT_TRUNC_CALLS, 1);
		count(TAP_CNT_TRUNC_BYTES, to_copy - cap_bytes);
		to_copy = cap_bytes;
	}
	c.seg = buf;
	c.seg_left = to_copy;
	c.id = id;
	c.conn = connid;
	c.pos = pos;
	c.type = TAP_EV_DATA;
	c.call_len = moved;
	c.to_copy = to_copy;
	c.fd = conn->fd;
	c.dir = dir;
	stream_copy_run(&c, SLOT_UPROBE);
}

static __always_inline int call_exit(struct pt_regs *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight *call = bpf_map_lookup_elem(&inflight, &id);
	long ret = PT_REGS_RC(ctx);
	__u64 moved;

	if (!call) {
		/*
		 * Bytes moved by a call whose start was not recorded (evicted from a full map). The
		 * probes are attached per library file: in a process that is no target, every call.
		 */
		if ((int)ret > 0 && is_plain_target(id >> 32))
			count(TAP_CNT_UNTRACKED_CALLS, 1);
		return 0;
	}
	if ((int)ret <= 0) /* failed or would block: nothing moved */
		goto out;
	if (call->lenp) {
		__u64 n = 0;

		if (bpf_probe_read_user(&n, sizeof(n), (void *)call->lenp)) {
			count(TAP_CNT_READ_FAULTS, 1);
			goto out;
		}
		moved = n;
	} else {
		moved = (__u64)(int)ret;
	}
	deliver(id, call->ssl, call->fd, call->buf, moved, dir);
out:
	bpf_map_delete_elem(&inflight, &id);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(read_enter_ptr4) { return call_enter(ctx, true); }

SEC("uprobe")
int BPF_KPROBE(read_enter_ret) { return call_enter(ctx, false); }

SEC("uretprobe")
int BPF_KRETPROBE(read_exit) { return call_exit(ctx, TAP_DIR_READ); }

SEC("uprobe")
int BPF_KPROBE(write_enter_ptr4) { return call_enter(ctx, true); }

SEC("uprobe")
int BPF_KPROBE(write_enter_ret) { return call_enter(ctx, false); }

SEC("uretprobe")
int BPF_KRETPROBE(write_exit) { return call_exit(ctx, TAP_DIR_WRITE); }

/* A goroutine of a process (Go programs). */
struct go_key {
	__u32 tgid;
	__u32 pad;
	__u64 g;
};

/* ---- client certificates ---------------------------------------------------------------- */
/*
 * The handshake in progress on a thread (OpenSSL: SSL_do_handshake, or the SSL_read/SSL_write
 * that runs it implicitly) or goroutine (Go: processCertsFromClient), so that the certificate parse
 * that follows can be tied to its connection. A parse counts only before the connection moved any
 * data (it has no `conns` entry yet), and only the first one (the peer's leaf) per connection.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* SSL* */
} ssl_handshakes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, __u64); /* *tls.Conn */
} go_handshakes SEC(".maps");

/* What was reported of a connection's handshake: HS_FULL and HS_CERT bits. */
#define HS_FULL 1
#define HS_CERT 2
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TAP_MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, __u8);
} hs_reported SEC(".maps");

/* Sets `bit` for the connection; false when it was set already or the connection moved data. */
static __always_inline bool first_report(struct conn_key *key, __u8 bit)
{
	__u8 *seen, fresh = bit;

	if (bpf_map_lookup_elem(&conns, key))
		return false; /* the handshake is over */
	seen = bpf_map_lookup_elem(&hs_reported, key);
	if (seen) {
		if (*seen & bit)
			return false;
		*seen |= bit;
		return true;
	}
	bpf_map_update_elem(&hs_reported, key, &fresh, BPF_ANY);
	return true;
}

/*
 * The server is sending its own certificate: a full handshake, not a resumed one, so a client
 * that has a certificate to present will present it next; without one the client presented
 * none (userspace: "anonymous" unless the request carries a credential).
 */
static __always_inline void emit_full_handshake(__u64 id, __u64 connid)
{
	struct conn_key key = {.tgid = id >> 32, .ssl = connid};
	struct tap_hdr ev = {};

	__u8 *seen = bpf_map_lookup_elem(&hs_reported, &key);

	/*
	 * A certificate already reported wins: a TLS 1.3 resumption re-processes the session's
	 * certificates before sendServerCertificate runs (and returns early).
	 */
	if (!connid || (seen && (*seen & HS_CERT)) || !first_report(&key, HS_FULL))
		return;
	fill_hdr(&ev, TAP_EV_FULL_HANDSHAKE, id, -1, connid);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tap_cert);
} cert_scratch SEC(".maps");

static __always_inline void emit_cert(__u64 id, __u64 connid, __u64 der, __u64 len)
{
	struct conn_key key = {.tgid = id >> 32, .ssl = connid};
	struct tap_cert *ev;
	__u32 zero = 0;
	__u64 n = len;

	if (!connid || !der || len == 0 || len > (1 << 20))
		return;
	if (!first_report(&key, HS_CERT))
		return; /* the handshake is over, or the leaf was already sent */
	ev = bpf_map_lookup_elem(&cert_scratch, &zero);
	if (!ev)
		return;
	if (n > TAP_CERT_MAX)
		n = TAP_CERT_MAX;
	fill_hdr(&ev->hdr, TAP_EV_PEER_CERT, id, -1, connid);
	ev->len = len;
	ev->captured = n;
	if (bpf_probe_read_user(ev->data, n, (void *)der)) {
		count(TAP_CNT_READ_FAULTS, 1);
		return;
	}
	if (bpf_ringbuf_output(&events, ev, TAP_CERT_HDR_BYTES + n, rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
}

/* SSL_do_handshake(SSL *s) */
SEC("uprobe")
int BPF_KPROBE(ssl_handshake, void *ssl)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 s = (__u64)ssl;

	if (is_target(id >> 32))
		bpf_map_update_elem(&ssl_handshakes, &id, &s, BPF_ANY);
	return 0;
}

/* The SSL* whose handshake this thread is running, 0 if none. */
static __always_inline __u64 handshake_ssl(__u64 id)
{
	/* A handshake run implicitly by the first SSL_read/SSL_write (no SSL_do_handshake). */
	struct inflight *call = bpf_map_lookup_elem(&inflight, &id);
	__u64 *hs;

	if (call)
		return call->ssl;
	hs = bpf_map_lookup_elem(&ssl_handshakes, &id);
	return hs ? *hs : 0;
}

static __always_inline bool emit_secret(struct tap_secret *ev, __u32 label, __u32 len)
{
	ev->label = label;
	ev->len = len;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), rb_flags())) {
		count(TAP_CNT_RINGBUF_DROPS, 1);
		return false;
	}
	count(TAP_CNT_SECRETS, 1);
	return true;
}

/*
 * A keys-path target's handshake on `ssl` completed: its secrets, read from the SSL object with
 * the process's calibrated layout. TLS 1.3: the client and server application traffic secrets
 * (64 bytes each: the cipher suite's hash length, known to userspace, says how many count);
 * otherwise the master secret in the session.
 */
static __always_inline void emit_ssl_secrets(__u64 id, __u64 ssl, __u64 cookie)
{
	__u32 tgid = id >> 32;
	__u32 file = cookie >> TAP_COOKIE_FILE_SHIFT;
	struct tap_ssl_layout *layout;
	struct tap_secret ev = {};
	__u32 version = 0;
	__u64 session = 0;

	if (!(target_mode(tgid) & TAP_TARGET_CIPHER))
		return;
	/* Probes attached per file read with that file's layout; per process, with the process's.
	 */
	layout = file ? bpf_map_lookup_elem(&file_layouts, &file)
		      : bpf_map_lookup_elem(&ssl_layouts, &tgid);
	if (!layout)
		return;
	fill_hdr(&ev.hdr, TAP_EV_SECRET, id, -1, ssl);
	ev.source = TAP_SECRET_FROM_OPENSSL;
	if (bpf_probe_read_user(&version, sizeof(version), (void *)(ssl + layout->version)) ||
	    bpf_probe_read_user(ev.client_random, sizeof(ev.client_random),
				(void *)(ssl + layout->client_random)))
		goto fault;
	ev.version = version;
	if (version < 0x0301 || version > 0x0304)
		return; /* no version negotiated (TLS_ANY_VERSION until then): no handshake done */
	if (version == 0x0304) {
		if (bpf_probe_read_user(ev.secret, 64, (void *)(ssl + layout->client_app_secret)))
			goto fault;
		if (!emit_secret(&ev, TAP_SECRET_CLIENT_TRAFFIC_0, 64))
			return;
		if (bpf_probe_read_user(ev.secret, 64, (void *)(ssl + layout->server_app_secret)))
			goto fault;
		emit_secret(&ev, TAP_SECRET_SERVER_TRAFFIC_0, 64);
		return;
	}
	if (bpf_probe_read_user(&session, sizeof(session), (void *)(ssl + layout->session)) ||
	    !session || bpf_probe_read_user(ev.secret, 48, (void *)(session + layout->master_key)))
		goto fault;
	emit_secret(&ev, TAP_SECRET_MASTER, 48);
	return;
fault:
	count(TAP_CNT_SECRET_FAULTS, 1);
}

/*
 * The SSL objects whose secrets were sent at the return of their SSL_do_handshake. A handshake
 * OpenSSL runs inside the first SSL_read/SSL_write (a server that calls SSL_set_accept_state and
 * then reads, as `openssl s_server -WWW` does) never passes there: its secrets are read when
 * the connection ends instead (SSL_shutdown, SSL_free), and userspace holds the connection's
 * bytes until they come.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TAP_MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, __u8);
} secrets_sent SEC(".maps");

/*
 * SSL_do_handshake returns (SSL_accept and SSL_connect run through it): what the thread parses
 * from now on is not this handshake's. The attach cookie's bit 1 is set on the libssl whose
 * layout `ssl_layouts` (a probe of one process) or `file_layouts` (a probe of the file, see
 * TAP_COOKIE_FILE_SHIFT) holds: there a completed handshake (1) hands over its secrets.
 */
SEC("uretprobe")
int BPF_KRETPROBE(ssl_handshake_exit, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *hs = bpf_map_lookup_elem(&ssl_handshakes, &id);
	__u64 cookie = bpf_get_attach_cookie(ctx);

	if (!hs)
		return 0;
	if (ret == 1 && *hs && (cookie & 1)) {
		struct conn_key key = {.tgid = id >> 32, .ssl = *hs};
		__u8 one = 1;

		emit_ssl_secrets(id, *hs, cookie);
		bpf_map_update_elem(&secrets_sent, &key, &one, BPF_ANY);
	}
	bpf_map_delete_elem(&ssl_handshakes, &id);
	return 0;
}

/* d2i_X509(X509 **a, const unsigned char **pp, long length) */
SEC("uprobe")
int BPF_KPROBE(ssl_cert_parse, void *a, void *pp, long length)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 der = 0, ssl = handshake_ssl(id);

	if (!ssl || !pp || bpf_probe_read_user(&der, sizeof(der), pp))
		return 0;
	emit_cert(id, ssl, der, (__u64)length);
	return 0;
}

/* i2d_X509: the server serialises its certificate chain, which only a full handshake sends. */
SEC("uprobe")
int BPF_KPROBE(ssl_cert_send)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ssl = handshake_ssl(id);

	if (ssl)
		emit_full_handshake(id, ssl);
	return 0;
}

static __always_inline int end_conn(__u64 connid)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key key = {.tgid = id >> 32, .ssl = connid};
	struct conn_state *conn;
	struct tap_conn_end ev = {};
	bool reported;

	if (!connid || !is_target(key.tgid))
		return 0;
	conn = bpf_map_lookup_elem(&conns, &key);
	/* The SSL* or *tls.Conn may be reused by the next connection. */
	reported = bpf_map_lookup_elem(&hs_reported, &key) != 0;
	if (reported)
		bpf_map_delete_elem(&hs_reported, &key);
	/*
	 * A connection that never moved data ends too if its handshake was reported: userspace
	 * holds its certificate state, which must not pass to the next connection at this address.
	 */
	if (!conn && !reported)
		return 0;
	fill_hdr(&ev.hdr, TAP_EV_CONN_END, id, conn ? conn->fd : -1, key.ssl);
	if (conn) {
		ev.read_pos = conn->pos[TAP_DIR_READ];
		ev.write_pos = conn->pos[TAP_DIR_WRITE];
		bpf_map_delete_elem(&conns, &key);
	}
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
	return 0;
}

/*
 * SSL_free / SSL_shutdown: the TLS connection ends. Attach cookie bit 1: a calibrated libssl,
 * whose SSL objects' secrets are read here when SSL_do_handshake did not send them (a version
 * of 0 is an object whose handshake never began); bit 2: SSL_free, after which the object's
 * address may name the next connection.
 */
SEC("uprobe")
int BPF_KPROBE(conn_end, void *ssl)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct conn_key key = {.tgid = id >> 32, .ssl = (__u64)ssl};

	if ((cookie & 1) && ssl) {
		if (!bpf_map_lookup_elem(&secrets_sent, &key))
			emit_ssl_secrets(id, (__u64)ssl, cookie);
		if (cookie & 2)
			bpf_map_delete_elem(&secrets_sent, &key);
	}
	return end_conn((__u64)ssl);
}

/* ---- Go crypto/tls ------------------------------------------------------------------------ */
/*
 * Go's register ABI (Go >= 1.17, amd64): at entry of crypto/tls.(*Conn).Read/Write the
 * receiver is in AX, the buffer in BX and its length in CX; at a RET n is in AX; the running
 * goroutine (g) is in R14 throughout. A goroutine can block inside Read and resume on another
 * thread, so a call is keyed by its goroutine, not its thread. Userspace puts these programs on
 * the `jbe` of the stack check (emulated, registers still the arguments) and on every RET.
 */
struct go_call {
	__u64 conn;
	__u64 buf;
	__s32 fd;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, struct go_call);
} go_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, struct go_call);
} go_write_inflight SEC(".maps");

/*
 * The socket under a *tls.Conn, from Go's structures: tls.Conn begins with its net.Conn
 * interface (itab, data); for a TCP connection data is a *net.TCPConn, whose first word is its
 * *net.netFD; a netFD begins with poll.FD, whose Sysfd follows the 16-byte fdMutex. These
 * layouts are unchanged from Go 1.9 to the current release. Another net.Conn (a wrapper, a
 * unix socket) gives a number that is not an IP socket of the process, and emit_sock ignores
 * it; the connection is then still audited, without its peer.
 */
#define GO_TLSCONN_CONN_DATA 8
#define GO_NETFD_SYSFD 16

static __always_inline __s32 go_conn_fd(__u64 tlsconn)
{
	__u64 data = 0, netfd = 0;
	__s64 sysfd = -1;

	if (bpf_probe_read_user(&data, sizeof(data), (void *)(tlsconn + GO_TLSCONN_CONN_DATA)) ||
	    !data || bpf_probe_read_user(&netfd, sizeof(netfd), (void *)data) || !netfd ||
	    bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + GO_NETFD_SYSFD)))
		return -1;
	return sysfd >= 0 && sysfd < (1 << 24) ? (__s32)sysfd : -1;
}

/*
 * Read and Write alike: the entry stores the call per goroutine (overwriting, as a call
 * restarted by runtime.morestack hits the entry site twice); a return path delivers the n bytes
 * the call really moved, so a Write is delivered once and only what was written.
 */
static __always_inline int go_call_enter(struct pt_regs *ctx, void *map)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key key = {.tgid = id >> 32, .g = ctx->r14};
	struct go_call call = {};

	if (!is_plain_target(key.tgid) || !ctx->ax)
		return 0;
	call.conn = ctx->ax;
	call.buf = ctx->bx;
	call.fd = go_conn_fd(call.conn);
	/* Should the map refuse it, the return finds no entry and counts the call as untracked. */
	bpf_map_update_elem(map, &key, &call, BPF_ANY);
	return 0;
}

/*
 * A return path. The attach cookie says where n is: 0 on a RET (in AX); K+1 on the emulated
 * call that precedes `mov rax, [rsp+K]` on a straight-line return path (see go_binary.h).
 */
static __always_inline int go_call_return(struct pt_regs *ctx, void *map, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key key = {.tgid = id >> 32, .g = ctx->r14};
	struct go_call *call = bpf_map_lookup_elem(map, &key);
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__s64 n = (__s64)ctx->ax;

	if (cookie && bpf_probe_read_user(&n, sizeof(n), (void *)(ctx->sp + cookie - 1))) {
		count(TAP_CNT_READ_FAULTS, 1);
		n = 0;
	}
	if (!call) {
		/*
		 * Bytes moved by a call whose start was not recorded: evicted from a full map, or
		 * a goroutine already inside the call when the probes were attached.
		 */
		if (n > 0)
			count(TAP_CNT_UNTRACKED_CALLS, 1);
		return 0;
	}
	if (n > 0)
		deliver(id, call->conn, call->fd, call->buf, (__u64)n, dir);
	bpf_map_delete_elem(map, &key);
	return 0;
}

SEC("uprobe")
int go_read_enter(struct pt_regs *ctx) { return go_call_enter(ctx, &go_inflight); }

SEC("uprobe")
int go_read_return(struct pt_regs *ctx) { return go_call_return(ctx, &go_inflight, TAP_DIR_READ); }

SEC("uprobe")
int go_write_enter(struct pt_regs *ctx) { return go_call_enter(ctx, &go_write_inflight); }

SEC("uprobe")
int go_write_return(struct pt_regs *ctx)
{
	return go_call_return(ctx, &go_write_inflight, TAP_DIR_WRITE);
}

/* crypto/tls.(*Conn).Close */
SEC("uprobe")
int go_close_enter(struct pt_regs *ctx) { return end_conn(ctx->ax); }

/*
 * crypto/tls.(*Conn).processCertsFromClient(certificate): AX is the *tls.Conn. The certificates
 * it parses, between its entry and its return, are the ones the client sent (or, on a TLS 1.3
 * resumption, the ones its session recorded); nothing else the goroutine parses counts.
 */
SEC("uprobe")
int go_certs_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key key = {.tgid = id >> 32, .g = ctx->r14};
	__u64 conn = ctx->ax;

	if (is_target(key.tgid) && conn)
		bpf_map_update_elem(&go_handshakes, &key, &conn, BPF_ANY);
	return 0;
}

SEC("uprobe")
int go_certs_return(struct pt_regs *ctx)
{
	struct go_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = ctx->r14};

	bpf_map_delete_elem(&go_handshakes, &key);
	return 0;
}

/*
 * crypto/tls.(*serverHandshakeStateTLS13).sendServerCertificate and
 * (*serverHandshakeState).doFullHandshake: only full handshakes run them. AX is the handshake
 * state, whose first field is the *tls.Conn.
 */
SEC("uprobe")
int go_full_handshake_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 conn = 0;

	if (!is_target(id >> 32) || !ctx->ax ||
	    bpf_probe_read_user(&conn, sizeof(conn), (void *)ctx->ax))
		return 0;
	emit_full_handshake(id, conn);
	return 0;
}

/* crypto/x509.ParseCertificate(der []byte): AX is the pointer, BX the length. */
SEC("uprobe")
int go_cert_parse_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key key = {.tgid = id >> 32, .g = ctx->r14};
	__u64 *conn = bpf_map_lookup_elem(&go_handshakes, &key);

	if (conn)
		emit_cert(id, *conn, ctx->ax, ctx->bx);
	return 0;
}

/*
 * Go's handshake secrets (keys path). crypto/tls calls (*Config).writeKeyLog(label string,
 * clientRandom, secret []byte) for every secret of every handshake, KeyLogWriter set or not.
 * Its receiver is the Config, not the connection: the connection is the *tls.Conn whose
 * (*Conn).serverHandshake or clientHandshake the goroutine entered last (the handshake runs in
 * the goroutine that asked for it). No return probe clears it: a goroutine's next handshake
 * overwrites it first, and LRU drops the entries of goroutines that are gone.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, __u64); /* *tls.Conn */
} go_hs_conns SEC(".maps");

/* crypto/tls.(*Conn).serverHandshake / clientHandshake(ctx): AX is the *tls.Conn. */
SEC("uprobe")
int go_handshake_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key key = {.tgid = id >> 32, .g = ctx->r14};
	__u64 conn = ctx->ax;

	if (conn && (target_mode(key.tgid) & TAP_TARGET_CIPHER))
		bpf_map_update_elem(&go_hs_conns, &key, &conn, BPF_ANY);
	return 0;
}

#define GO_LABEL_MAX 32

/* The key log label (crypto/tls keyLogLabel*), as enum tap_secret_label; 0 for another. */
static __always_inline __u32 go_label(const char *l, __u64 len)
{
	static const char hs[] = "_HANDSHAKE_TRAFFIC_SECRET"; /* after CLIENT / SERVER */
	static const char app[] = "_TRAFFIC_SECRET_0";
	static const char cr[] = "CLIENT_RANDOM";
	bool client =
	    l[0] == 'C' && l[1] == 'L' && l[2] == 'I' && l[3] == 'E' && l[4] == 'N' && l[5] == 'T';
	bool server =
	    l[0] == 'S' && l[1] == 'E' && l[2] == 'R' && l[3] == 'V' && l[4] == 'E' && l[5] == 'R';
	int i;

	if (len == sizeof(cr) - 1) {
#pragma unroll
		for (i = 0; i < sizeof(cr) - 1; i++)
			if (l[i] != cr[i])
				return 0;
		return TAP_SECRET_MASTER;
	}
	if (!client && !server)
		return 0;
	if (len == 6 + sizeof(hs) - 1) {
#pragma unroll
		for (i = 0; i < sizeof(hs) - 1; i++)
			if (l[6 + i] != hs[i])
				return 0;
		return client ? TAP_SECRET_CLIENT_HANDSHAKE : TAP_SECRET_SERVER_HANDSHAKE;
	}
	if (len == 6 + sizeof(app) - 1) {
#pragma unroll
		for (i = 0; i < sizeof(app) - 1; i++)
			if (l[6 + i] != app[i])
				return 0;
		return client ? TAP_SECRET_CLIENT_TRAFFIC_0 : TAP_SECRET_SERVER_TRAFFIC_0;
	}
	return 0;
}

/*
 * crypto/tls.(*Config).writeKeyLog, at its entry site (go_binary.h): Go's register ABI puts
 * the receiver in AX, label (ptr, len) in BX, CX, clientRandom (ptr, len, cap) in DI, SI, R8
 * and secret (ptr, len, cap) in R9, R10, R11.
 */
SEC("uprobe")
int go_keylog_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key key = {.tgid = id >> 32, .g = ctx->r14};
	char label[GO_LABEL_MAX] = {};
	struct tap_secret ev = {};
	__u32 label_len, secret_len;
	__u64 *conn;

	if (!(target_mode(key.tgid) & TAP_TARGET_CIPHER))
		return 0;
	if (ctx->cx == 0 || ctx->cx > GO_LABEL_MAX || ctx->si != 32 || ctx->r10 == 0 ||
	    ctx->r10 > TAP_SECRET_MAX)
		return 0;
	label_len = ctx->cx;
	secret_len = ctx->r10;
	barrier_var(label_len);
	barrier_var(secret_len);
	if (label_len > GO_LABEL_MAX || secret_len > TAP_SECRET_MAX)
		return 0;
	if (bpf_probe_read_user(label, label_len, (void *)ctx->bx))
		goto fault;
	ev.label = go_label(label, label_len);
	if (!ev.label)
		return 0; /* a label this auditor does not use */
	conn = bpf_map_lookup_elem(&go_hs_conns, &key);
	fill_hdr(&ev.hdr, TAP_EV_SECRET, id, -1, conn ? *conn : 0);
	ev.source = TAP_SECRET_FROM_GO;
	ev.len = secret_len;
	if (bpf_probe_read_user(ev.client_random, sizeof(ev.client_random), (void *)ctx->di) ||
	    bpf_probe_read_user(ev.secret, secret_len, (void *)ctx->r9))
		goto fault;
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags())) {
		count(TAP_CNT_RINGBUF_DROPS, 1);
		return 0;
	}
	count(TAP_CNT_SECRETS, 1);
	return 0;
fault:
	count(TAP_CNT_SECRET_FAULTS, 1);
	return 0;
}

/* ---- sockets ----------------------------------------------------------------------------- */

/* A read/write-family syscall made inside an SSL call names the connection's socket. */
static __always_inline int note_io_fd(struct syscall_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct inflight *call = bpf_map_lookup_elem(&inflight, &id);

	if (call)
		call->fd = (__s32)ctx->args[0];
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int tp_enter_read(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }
SEC("tracepoint/syscalls/sys_enter_write")
int tp_enter_write(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int tp_enter_recvfrom(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }
SEC("tracepoint/syscalls/sys_enter_sendto")
int tp_enter_sendto(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }
SEC("tracepoint/syscalls/sys_enter_readv")
int tp_enter_readv(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }
SEC("tracepoint/syscalls/sys_enter_writev")
int tp_enter_writev(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }
SEC("tracepoint/syscalls/sys_enter_recvmsg")
int tp_enter_recvmsg(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int tp_enter_sendmsg(struct syscall_enter_ctx *ctx) { return note_io_fd(ctx); }

static __always_inline int accept_enter(struct syscall_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 uaddr = ctx->args[1];

	if (is_plain_target(id >> 32))
		bpf_map_update_elem(&accept_args, &id, &uaddr, BPF_ANY);
	return 0;
}

static __always_inline int accept_exit(struct syscall_exit_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *uaddr = bpf_map_lookup_elem(&accept_args, &id);

	if (!uaddr) {
		/*
		 * The call began before the process became a target (a server blocked in
		 * accept when the auditor started): the peer comes from the new socket itself.
		 */
		if (ctx->ret >= 0 && is_plain_target(id >> 32))
			emit_sock(id, (__s32)ctx->ret, TAP_ROLE_SERVER, 0);
		return 0;
	}
	if (ctx->ret >= 0)
		emit_sock(id, (__s32)ctx->ret, TAP_ROLE_SERVER, *uaddr);
	bpf_map_delete_elem(&accept_args, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int tp_enter_accept4(struct syscall_enter_ctx *ctx) { return accept_enter(ctx); }
SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct syscall_exit_ctx *ctx) { return accept_exit(ctx); }
SEC("tracepoint/syscalls/sys_enter_accept")
int tp_enter_accept(struct syscall_enter_ctx *ctx) { return accept_enter(ctx); }
SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct syscall_exit_ctx *ctx) { return accept_exit(ctx); }

SEC("tracepoint/syscalls/sys_enter_connect")
int tp_enter_connect(struct syscall_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (is_plain_target(id >> 32))
		emit_sock(id, (__s32)ctx->args[0], TAP_ROLE_CLIENT, ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int tp_enter_close(struct syscall_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sock_key key = {.tgid = id >> 32, .fd = (__s32)ctx->args[0]};
	struct tap_hdr ev = {};

	if (!bpf_map_lookup_elem(&socks, &key))
		return 0;
	bpf_map_delete_elem(&socks, &key);
	fill_hdr(&ev, TAP_EV_FD_CLOSE, id, key.fd, 0);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
	return 0;
}

/* ---- socket bytes (keys path) -------------------------------------------------------------- */
/*
 * A keys-path target's TCP socket: where its bytes stand. Keyed by the socket's cookie
 * (bpf_get_socket_cookie: unique for the life of the system, unlike the struct sock * whose
 * memory the next socket reuses), which names the connection whatever fd or thread uses it.
 * An entry outlives TCP_CLOSE: a server still reads what arrived before a reset (a request
 * whose client reset the connection is still served), and those bytes must continue the
 * stream, not start a new one; LRU recycles entries of sockets long gone.
 */
struct cipher_sock {
	__u32 tgid;
	__s32 fd;     /* the fd of its last call */
	__u64 pos[2]; /* indexed by enum tap_direction */
	__u8 closed;  /* TAP_EV_SOCK_CLOSE sent */
	__u8 skip;    /* a local socket not audited (not accepted from a bound listener) */
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TAP_MAX_CONNS);
	__type(key, __u64); /* socket cookie */
	__type(value, struct cipher_sock);
} cipher_socks SEC(".maps");

/* x86-64 syscall numbers whose buffers the copy follows. */
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_preadv2 327
#define NR_pwritev2 328

/*
 * Local sockets (TAP_TARGET_LOCAL): an accepted AF_UNIX socket's fd in the target, to its cookie,
 * so that the close of that fd ends the connection. AF_UNIX has no state tracepoint, and
 * function entry programs (fentry on unix_release) are refused where the kernel is locked down.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TAP_MAX_CONNS);
	__type(key, struct sock_key);
	__type(value, __u64); /* socket cookie */
} local_fds SEC(".maps");

/*
 * The listening socket's address of an AF_UNIX socket it accepted (the accepted socket shares
 * it), or 0: a socket the target connected, or made with socketpair, has none of its own.
 */
static __always_inline struct unix_address *accepted_unix_addr(struct sock *sk)
{
	return BPF_CORE_READ((struct unix_sock *)sk, addr);
}

/* An accepted local socket first seen moving bytes: who connected, and to which path. */
static __always_inline void emit_local_sock(__u64 id, struct sock *sk, struct unix_address *addr,
					    __u64 cookie, __s32 fd)
{
	struct tap_local_sock *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	struct hlist_node *leader;
	const struct cred *cred;
	struct pid *peer;

	if (!ev) {
		count(TAP_CNT_RINGBUF_DROPS, 1);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	fill_hdr(&ev->hdr, TAP_EV_LOCAL_SOCK, id, fd, cookie);
	peer = BPF_CORE_READ(sk, sk_peer_pid);
	cred = BPF_CORE_READ(sk, sk_peer_cred);
	if (peer) {
		ev->peer_pid = BPF_CORE_READ(peer, numbers[0].nr);
		/* The thread group's leader: its task links the pid as PIDTYPE_TGID. */
		leader = BPF_CORE_READ(peer, tasks[PIDTYPE_TGID].first);
		if (leader) {
			struct task_struct *task =
			    (void *)leader - bpf_core_field_offset(struct task_struct, pid_links) -
			    PIDTYPE_TGID * sizeof(struct hlist_node);

			BPF_CORE_READ_STR_INTO(&ev->peer_comm, task, comm);
		}
	}
	if (cred) {
		ev->peer_uid = BPF_CORE_READ(cred, euid.val);
		ev->peer_gid = BPF_CORE_READ(cred, egid.val);
	}
	/*
	 * The path up to its NUL (an abstract address, which starts with a NUL, reads as empty:
	 * path_len 1, path[0] 0). len counts sun_family and the path's NUL.
	 */
	if (BPF_CORE_READ(addr, len) > (int)sizeof(__u16)) {
		long got = bpf_probe_read_kernel_str(
		    ev->path, sizeof(ev->path),
		    (void *)addr + bpf_core_field_offset(struct unix_address, name) +
			sizeof(__u16));

		ev->path_len = got > 1 ? got - 1 : 1;
	}
	bpf_ringbuf_submit(ev, rb_flags());
}

/* A socket first seen moving bytes: its endpoints, straight from the sock. */
static __always_inline void emit_cipher_sock(__u64 id, struct sock *sk, __u64 cookie, __s32 fd,
					     __u16 family)
{
	struct tap_sock ev = {};

	fill_hdr(&ev.hdr, TAP_EV_SOCK, id, fd, cookie);
	ev.role = TAP_ROLE_UNKNOWN;
	ev.family = family;
	ev.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev.port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(ev.addr, &daddr, 4);
	} else {
		BPF_CORE_READ_INTO(&ev.addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
}

/*
 * sock:sock_send_length / sock:sock_recv_length: a socket call moved `ret` bytes; the data is
 * already in (recv) or taken from (send) the user buffers of the syscall that made it, whose
 * arguments are the task's saved user registers.
 */
static __always_inline int on_sock_io(struct sock *sk, int ret, int flags, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct cipher_sock fresh = {}, *cs;
	struct stream_copy c = {};
	struct pt_regs *regs;
	__u64 key, pos, nr, to_copy;
	__u16 family;
	__s32 fd = -1;
	bool covered = false, local = false;
	__u8 mode;

	if (ret <= 0 || !sk)
		return 0;
	mode = target_mode(id >> 32);
	if (!(mode & (TAP_TARGET_CIPHER | TAP_TARGET_LOCAL)))
		return 0;
	if (dir == TAP_DIR_READ && (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0; /* not bytes of the stream, or not consumed */
	/*
	 * sk, task and regs are pointers the verifier trusts (BTF tracepoint argument, helpers
	 * returning BTF pointers): plain loads, several times cheaper than bpf_probe_read_kernel.
	 */
	family = sk->__sk_common.skc_family;
	if (family == AF_UNIX) {
		/* A local API connection: plaintext, delivered as TAP_EV_DATA. */
		if (!(mode & TAP_TARGET_LOCAL) || sk->sk_type != SOCK_STREAM)
			return 0;
		local = true;
	} else if (!(mode & TAP_TARGET_CIPHER) || (family != AF_INET && family != AF_INET6) ||
		   sk->sk_protocol != IPPROTO_TCP) {
		return 0;
	}
	key = bpf_get_socket_cookie(sk);
	cs = bpf_map_lookup_elem(&cipher_socks, &key);
	if (cs && cs->skip)
		return 0; /* a local socket of the target's own (a client, a socketpair) */

	task = bpf_get_current_task_btf();
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	nr = regs->orig_ax;
	if (!(task->flags & (PF_IO_WORKER | PF_KTHREAD)) &&
	    !(dir == TAP_DIR_READ && (flags & MSG_TRUNC))) {
		__u64 arg1 = regs->di, arg2 = regs->si, arg3 = regs->dx;

		switch (nr) {
		case NR_read:
		case NR_write:
		case NR_sendto:
		case NR_recvfrom:
			c.seg = arg2;
			c.seg_left = (__u64)ret;
			covered = true;
			break;
		case NR_readv:
		case NR_writev:
		case NR_preadv2:
		case NR_pwritev2:
			c.iov = arg2;
			c.iov_left = arg3;
			covered = true;
			break;
		case NR_sendmsg:
		case NR_recvmsg: {
			struct user_msghdr_min m = {};

			if (!bpf_probe_read_user(&m, sizeof(m), (void *)arg2)) {
				c.iov = m.msg_iov;
				c.iov_left = m.msg_iovlen;
				covered = true;
			}
			break;
		}
		default:
			break;
		}
		if (covered)
			fd = (__s32)arg1;
	}

	if (!cs) {
		struct unix_address *addr = 0;

		fresh.tgid = id >> 32;
		fresh.fd = fd;
		if (local) {
			addr = accepted_unix_addr(sk);
			fresh.skip = !addr;
		}
		if (bpf_map_update_elem(&cipher_socks, &key, &fresh, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&cipher_socks, &key))
			count(TAP_CNT_CONN_MAP_FULL, 1);
		cs = bpf_map_lookup_elem(&cipher_socks, &key);
		if (!cs || fresh.skip)
			return 0;
		if (local) {
			struct sock_key fk = {.tgid = id >> 32, .fd = fd};

			if (fd >= 0)
				bpf_map_update_elem(&local_fds, &fk, &key, BPF_ANY);
			emit_local_sock(id, sk, addr, key, fd);
		} else {
			emit_cipher_sock(id, sk, key, fd, family);
		}
	}
	if (fd >= 0 && fd != cs->fd) {
		if (local) {
			struct sock_key fk = {.tgid = id >> 32, .fd = fd};

			bpf_map_update_elem(&local_fds, &fk, &key, BPF_ANY);
		}
		cs->fd = fd;
	}
	dir &= 1;
	pos = cs->pos[dir];
	cs->pos[dir] = pos + (__u64)ret;

	if (!covered) {
		/* sendmmsg, recvmmsg, io_uring, sendfile, splice, ...: the bytes are a gap. */
		count(TAP_CNT_CIPHER_UNCOVERED, 1);
		return 0;
	}
	if (local) {
		count(TAP_CNT_LOCAL_CALLS, 1);
		count(TAP_CNT_LOCAL_BYTES, (__u64)ret);
	} else {
		count(TAP_CNT_CIPHER_CALLS, 1);
		count(TAP_CNT_CIPHER_BYTES, (__u64)ret);
	}
	to_copy = (__u64)ret;
	if (to_copy > cipher_cap_bytes) {
		count(TAP_CNT_TRUNC_CALLS, 1);
		count(TAP_CNT_TRUNC_BYTES, to_copy - cipher_cap_bytes);
		to_copy = cipher_cap_bytes;
	}
	c.id = id;
	c.conn = key;
	c.pos = pos;
	c.type = local ? TAP_EV_DATA : TAP_EV_CIPHER;
	c.call_len = (__u32)ret;
	c.to_copy = to_copy;
	c.fd = fd;
	c.dir = dir;
	stream_copy_run(&c, SLOT_TRACEPOINT);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, flags, TAP_DIR_WRITE);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags)
{
	return on_sock_io(sk, ret, flags, TAP_DIR_READ);
}

/*
 * sock:inet_sock_set_state: a keys-path socket reached TCP_CLOSE. May run in softirq context
 * (a reset, a timer), on behalf of no task of the target: everything comes from the map entry.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, struct sock *sk, int oldstate, int newstate)
{
	struct cipher_sock *cs;
	struct tap_hdr ev = {};
	__u64 key;

	if (newstate != TCP_CLOSE)
		return 0;
	key = bpf_get_socket_cookie((void *)sk);
	cs = bpf_map_lookup_elem(&cipher_socks, &key);
	if (!cs || cs->closed)
		return 0;
	cs->closed = 1;
	fill_hdr(&ev, TAP_EV_SOCK_CLOSE, (__u64)cs->tgid << 32, cs->fd, key);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
	return 0;
}

/*
 * close(2) by a target of an accepted local socket's fd: the connection ends, with its positions,
 * as a TLS connection does at SSL_free. Attached while some target has TAP_TARGET_LOCAL; costs
 * every other close one lookup.
 */
SEC("tracepoint/syscalls/sys_enter_close")
int tp_local_close(struct syscall_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sock_key fk = {.tgid = id >> 32, .fd = (__s32)ctx->args[0]};
	struct tap_conn_end ev = {};
	struct cipher_sock *cs;
	__u64 *cookie, key;

	cookie = bpf_map_lookup_elem(&local_fds, &fk);
	if (!cookie)
		return 0;
	key = *cookie;
	bpf_map_delete_elem(&local_fds, &fk);
	cs = bpf_map_lookup_elem(&cipher_socks, &key);
	if (!cs || cs->fd != fk.fd)
		return 0; /* a stale entry: the socket has moved on to another fd */
	fill_hdr(&ev.hdr, TAP_EV_CONN_END, id, fk.fd, key);
	ev.read_pos = cs->pos[TAP_DIR_READ];
	ev.write_pos = cs->pos[TAP_DIR_WRITE];
	bpf_map_delete_elem(&cipher_socks, &key);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count(TAP_CNT_RINGBUF_DROPS, 1);
	return 0;
}

/*
 * Attach at exec (issue 13). A process whose comm is one of --comm's (target_comms, filled by
 * userspace) runs exec, or a watched process (a target, a --pid, their descendants: `watched`)
 * forks or execs: it is reported on proc_events, which wakes userspace at once. The kernel does
 * not wait for userspace to make it a target: a forked child of a target inherits the parent's
 * `targets` and `ssl_layouts` entries here, and an exec of a --comm's program or of a
 * descendant of a --pid (`pid_trees`) sets its `targets` entry (the value userspace gave the
 * comm or the tree), so with the TLS probes attached per library file (pid -1) a restarted
 * server and its forked workers are captured from their first instruction; userspace then
 * adopts the entries (and probes what is per process: Go) or removes them.
 * Cost to other processes: two map lookups per fork, one or two per exec.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TAP_MAX_WATCH_COMMS);
	__type(key, char[TAP_COMM_LEN]);
	__type(value, __u8); /* enum tap_target_mode bits set at exec, 0: reported only */
} target_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4 * TAP_MAX_TARGETS);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} watched SEC(".maps");

/*
 * A --pid and its descendants (a child is added at its fork): the enum tap_target_mode bits set
 * at the exec of any of them (0: reported only). LRU: entries of processes gone are recycled.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4 * TAP_MAX_TARGETS);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} pid_trees SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 10);
} proc_events SEC(".maps");

static __always_inline void emit_proc(__u32 tgid, __u32 kind, __u32 parent)
{
	struct tap_proc ev = {};

	ev.hdr.type = TAP_EV_PROC;
	ev.hdr.tgid = tgid;
	ev.hdr.tid = tgid;
	ev.hdr.fd = -1;
	ev.hdr.ts_ns = bpf_ktime_get_ns();
	ev.kind = kind;
	ev.parent = parent;
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	/* Every event wakes the reader. Lost ones are found by the rescan (the safety net). */
	bpf_ringbuf_output(&proc_events, &ev, sizeof(ev), BPF_RB_FORCE_WAKEUP);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(proc_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = (__u32)parent->tgid;
	__u32 ctgid = (__u32)child->tgid;
	struct tap_ssl_layout *layout;
	__u8 one = 1;
	__u8 *mode, *tree;

	if (child->pid != child->tgid || ptgid == ctgid)
		return 0; /* a thread */
	tree = bpf_map_lookup_elem(&pid_trees, &ptgid);
	if (tree) {
		__u8 bits = *tree;

		bpf_map_update_elem(&pid_trees, &ctgid, &bits, BPF_ANY);
	} else {
		bpf_map_delete_elem(&pid_trees, &ctgid); /* a reused pid's stale entry */
	}
	if (!bpf_map_lookup_elem(&watched, &ptgid))
		return 0;
	bpf_map_update_elem(&watched, &ctgid, &one, BPF_ANY);
	mode = bpf_map_lookup_elem(&targets, &ptgid);
	if (mode) {
		__u8 bits = *mode;

		layout = bpf_map_lookup_elem(&ssl_layouts, &ptgid);
		if (layout)
			bpf_map_update_elem(&ssl_layouts, &ctgid, layout, BPF_ANY);
		bpf_map_update_elem(&targets, &ctgid, &bits, BPF_ANY);
	}
	emit_proc(ctgid, TAP_PROC_FORK, ptgid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(proc_exec, struct task_struct *p, int old_pid, void *bprm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	char comm[TAP_COMM_LEN] = {};
	__u8 one = 1, bits = 0, *v;
	__u32 how = 0; /* 1: watched before, 2: a --comm's program, 4: in a --pid's tree */

	bpf_get_current_comm(comm, sizeof(comm));
	if (bpf_map_lookup_elem(&watched, &tgid))
		how |= 1;
	v = bpf_map_lookup_elem(&target_comms, comm);
	if (v) {
		bits |= *v;
		how |= 2;
	}
	if (!how)
		return 0;
	/* A pid reused by a process outside the tree is never in it: the fork set or left it. */
	v = bpf_map_lookup_elem(&pid_trees, &tgid);
	if (v) {
		bits |= *v;
		how |= 4;
	}
	if (bits) {
		/* A target from its first instruction; userspace adopts it, or removes it. */
		bpf_map_update_elem(&targets, &tgid, &bits, BPF_ANY);
	} else if (!(how & 6)) {
		/* Watched (a child of a --comm's process) running another program: no target. */
		bpf_map_delete_elem(&targets, &tgid);
		bpf_map_delete_elem(&ssl_layouts, &tgid);
	}
	/* Its children (nginx's workers) are reported even before it is probed. */
	if (!(how & 1))
		bpf_map_update_elem(&watched, &tgid, &one, BPF_ANY);
	emit_proc(tgid, TAP_PROC_EXEC, 0);
	return 0;
}
