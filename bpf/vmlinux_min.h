/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types the BPF programs use, written out by hand instead of a full vmlinux.h
 * generated from whatever kernel the build host runs. Only stable ABI layouts appear here: the
 * x86-64 struct pt_regs, the syscall tracepoint records (common header, syscall nr, six args)
 * and the socket address structs. That keeps the build reproducible on any host, with or
 * without /sys/kernel/btf/vmlinux, and the programs portable across kernels.
 */
#ifndef MAT_VMLINUX_MIN_H
#define MAT_VMLINUX_MIN_H
/* Tells bpf_tracing.h to use the kernel's pt_regs field names (di, si, ...). */
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0 };

/* x86-64 user registers as saved on kernel entry (arch/x86/include/asm/ptrace.h). */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
	unsigned long orig_ax, ip, cs, flags, sp, ss;
};

/* Layout of every syscalls:sys_enter_* / sys_exit_* tracepoint record. */
struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};
struct syscall_enter_ctx {
	struct trace_entry ent;
	long nr;
	unsigned long args[6];
};
struct syscall_exit_ctx {
	struct trace_entry ent;
	long nr;
	long ret;
};

#define AF_INET 2
#define AF_INET6 10
struct sockaddr_in {
	__u16 sin_family;
	__be16 sin_port;
	__be32 sin_addr;
	__u8 sin_zero[8];
};
struct sockaddr_in6 {
	__u16 sin6_family;
	__be16 sin6_port;
	__be32 sin6_flowinfo;
	__u8 sin6_addr[16];
	__u32 sin6_scope_id;
};

/*
 * Kernel objects read with CO-RE: only the fields used, with their kernel names; libbpf
 * relocates every access against the running kernel's BTF at load time, so these partial
 * declarations work whatever the real layouts are.
 */
struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
} __attribute__((preserve_access_index));

struct kuid_min {
	__u32 val;
};

struct cred {
	struct kuid_min euid;
	struct kuid_min egid;
} __attribute__((preserve_access_index));

struct hlist_node {
	struct hlist_node *next;
	struct hlist_node **pprev;
} __attribute__((preserve_access_index));

struct hlist_head {
	struct hlist_node *first;
} __attribute__((preserve_access_index));

struct upid {
	int nr;
} __attribute__((preserve_access_index));

struct pid {
	struct hlist_head tasks[4];
	struct upid numbers[1];
} __attribute__((preserve_access_index));

#define PIDTYPE_TGID 1

struct sock {
	struct sock_common __sk_common;
	__u16 sk_type;
	__u16 sk_protocol;
	struct pid *sk_peer_pid;
	const struct cred *sk_peer_cred;
} __attribute__((preserve_access_index));

struct sockaddr_un {
	__u16 sun_family;
	char sun_path[108];
};

struct unix_address {
	int len;
	struct sockaddr_un name[0];
} __attribute__((preserve_access_index));

struct unix_sock {
	struct sock sk;
	struct unix_address *addr;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct file {
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int flags;
	struct files_struct *files;
	int pid;
	int tgid;
	struct hlist_node pid_links[4];
	char comm[16];
} __attribute__((preserve_access_index));

#define AF_UNIX 1
#define SOCK_STREAM 1

#define PF_IO_WORKER 0x00000010 /* io_uring worker thread: no syscall of its own */
#define PF_KTHREAD 0x00200000

#define IPPROTO_TCP 6
#define TCP_CLOSE 7
#define MSG_PEEK 0x2
#define MSG_TRUNC 0x20
#define MSG_ERRQUEUE 0x2000

/* The user-space ABI of the vectored socket calls (x86-64). */
struct user_iovec {
	__u64 base;
	__u64 len;
};
struct user_msghdr_min {
	__u64 msg_name;
	__u32 msg_namelen;
	__u32 pad;
	__u64 msg_iov;
	__u64 msg_iovlen;
};

#endif /* MAT_VMLINUX_MIN_H */
