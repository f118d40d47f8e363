/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Records passed from the BPF programs (bpf/tap.bpf.c) to userspace through the ring buffer, and
 * stored unchanged in --record files. The one definition shared by C (BPF) and C++: fixed-width
 * fields only, every size a #define. Every record starts with struct tap_hdr.
 */
#ifndef MKE_AUDIT_TAP_TAP_EVENTS_H
#define MKE_AUDIT_TAP_TAP_EVENTS_H

#ifdef __bpf__
/* vmlinux_min.h provides __u8 .. __u64 for the BPF side. */
#else
#include <linux/types.h>
#endif

#define TAP_CHUNK_BYTES 16384u /* payload bytes carried by one data record, at most */
#define TAP_MAX_CHUNKS 64u     /* chunks one call can produce: cap <= 1 MiB */
#define TAP_DEFAULT_CAP 65536u /* default payload bytes delivered per SSL call */
#define TAP_MAX_TARGETS 4096u  /* processes audited at once */
#define TAP_MAX_CONNS 65536u   /* live TLS connections tracked */
#define TAP_CERT_MAX 8192u     /* bytes of a client certificate delivered, at most */

enum tap_event_type {
  TAP_EV_DATA = 1,           /* plaintext moved by one SSL call (one record per chunk) */
  TAP_EV_SOCK = 2,           /* a target's socket: fd, peer and, when known, side */
  TAP_EV_FD_CLOSE = 3,       /* a target closed a socket it accepted or connected */
  TAP_EV_CONN_END = 4,       /* SSL_free/SSL_shutdown: the TLS connection is over */
  TAP_EV_PEER_CERT = 5,      /* the certificate a client presented in the handshake (leaf, DER) */
  TAP_EV_FULL_HANDSHAKE = 6, /* a full (not resumed) server handshake: a client certificate, if
                                any, follows as TAP_EV_PEER_CERT; header only */
  TAP_EV_CIPHER = 7,         /* bytes a target's TCP socket moved, as they went on the wire (TLS
                                records, still encrypted), laid out as struct tap_data; hdr.conn is
                                the socket's cookie (unique, never reused), hdr.fd the fd of the
                                syscall.
                                Userspace decrypts them (userspace/tls) and never records them. */
  TAP_EV_SECRET = 8,         /* one secret of a TLS handshake (struct tap_secret). Lives in the
                                auditor's memory only: never recorded, logged or written. */
  TAP_EV_SOCK_CLOSE = 9,     /* a socket whose bytes were sent as TAP_EV_CIPHER reached TCP_CLOSE;
                                header only, hdr.conn its cookie, hdr.fd its last known fd. The
                                server may still read what arrived before (a reset): more
                                TAP_EV_CIPHER of it can follow */
  TAP_EV_LOCAL_SOCK = 10,    /* a local (AF_UNIX stream) connection a TAP_TARGET_LOCAL target
                                accepted, first seen moving bytes (struct tap_local_sock): who
                                connected, as the kernel recorded it at connect. hdr.conn is the
                                socket's cookie; its bytes follow as TAP_EV_DATA records with that
                                conn (plaintext: no TLS on a local socket), and its end as a
                                TAP_EV_CONN_END with that conn when the target closes its fd */
  TAP_EV_PROC = 11,          /* a process that may be a target was made (fork) or runs a new
                                program (exec): struct tap_proc, on its own ring buffer
                                (proc_events), never in the data ring or a recording */
};

/* What a TAP_EV_PROC reports. */
enum tap_proc_kind {
  TAP_PROC_EXEC = 1, /* a process whose comm is a --comm, or that is watched, ran exec */
  TAP_PROC_FORK = 2, /* a watched process made a new process (not a thread) */
};

/* What a target's `targets` map value asks the kernel to capture (bits). */
enum tap_target_mode {
  TAP_TARGET_PLAIN = 1,  /* per-call plaintext uprobes (SSL_read/SSL_write, Go Read/Write) */
  TAP_TARGET_CIPHER = 2, /* socket bytes (TAP_EV_CIPHER) and handshake secrets (TAP_EV_SECRET) */
  TAP_TARGET_LOCAL = 4,  /* the bytes of the AF_UNIX stream sockets it accepted (dockerd's local
                            API): TAP_EV_LOCAL_SOCK, TAP_EV_DATA, TAP_EV_CONN_END */
};

/* Which secret a TAP_EV_SECRET carries: the labels of the NSS key log format. */
enum tap_secret_label {
  TAP_SECRET_MASTER = 1,           /* TLS 1.2 master secret (key log "CLIENT_RANDOM"), 48 bytes */
  TAP_SECRET_CLIENT_HANDSHAKE = 2, /* TLS 1.3 CLIENT_HANDSHAKE_TRAFFIC_SECRET (Go only) */
  TAP_SECRET_SERVER_HANDSHAKE = 3, /* TLS 1.3 SERVER_HANDSHAKE_TRAFFIC_SECRET (Go only) */
  TAP_SECRET_CLIENT_TRAFFIC_0 = 4, /* TLS 1.3 CLIENT_TRAFFIC_SECRET_0 */
  TAP_SECRET_SERVER_TRAFFIC_0 = 5, /* TLS 1.3 SERVER_TRAFFIC_SECRET_0 */
};

/* Where a secret came from. */
enum tap_secret_source {
  TAP_SECRET_FROM_OPENSSL = 1, /* read from the SSL object when its handshake returned 1; the
                                  TLS version is not known to the kernel: a TLS 1.2 connection's
                                  TLS 1.3 fields (and the reverse) hold whatever the object held */
  TAP_SECRET_FROM_GO = 2,      /* crypto/tls (*Config).writeKeyLog */
};

enum tap_direction {
  TAP_DIR_READ = 0,  /* SSL_read: bytes the process received */
  TAP_DIR_WRITE = 1, /* SSL_write: bytes the process sent */
};

enum tap_sock_role {
  TAP_ROLE_UNKNOWN = 0, /* first seen in a TLS call: userspace decides (listening port?) */
  TAP_ROLE_SERVER = 1,  /* the target accepted the connection */
  TAP_ROLE_CLIENT = 2,  /* the target connected */
};

/* Counters in the kernel (per-CPU array "counters"), indexed by this enum. */
enum tap_counter {
  TAP_CNT_DATA_CALLS = 0,     /* SSL calls that moved bytes */
  TAP_CNT_DATA_BYTES,         /* bytes those calls moved */
  TAP_CNT_TRUNC_CALLS,        /* calls that moved more than the cap */
  TAP_CNT_TRUNC_BYTES,        /* bytes beyond the cap, not delivered */
  TAP_CNT_RINGBUF_DROPS,      /* records lost because the ring buffer was full */
  TAP_CNT_RINGBUF_DROP_BYTES, /* payload bytes in those records */
  TAP_CNT_READ_FAULTS,        /* user memory that could not be read */
  TAP_CNT_CONN_MAP_FULL,      /* connections not tracked: map full */
  TAP_CNT_UNTRACKED_CALLS,    /* calls that moved bytes but whose start was not recorded (its
                                 in-flight entry evicted or refused): their bytes are lost */
  TAP_CNT_CIPHER_CALLS,       /* socket calls of targets whose bytes were sent as TAP_EV_CIPHER */
  TAP_CNT_CIPHER_BYTES,       /* bytes those calls moved */
  TAP_CNT_CIPHER_UNCOVERED,   /* socket calls of targets from a syscall the copy cannot follow
                                 (sendmmsg, recvmmsg, io_uring, splice, ...): their bytes are lost */
  TAP_CNT_SECRETS,            /* TAP_EV_SECRET records sent */
  TAP_CNT_SECRET_FAULTS,      /* handshakes whose secrets could not be read */
  TAP_CNT_LOCAL_CALLS,        /* socket calls on targets' accepted local sockets, bytes sent */
  TAP_CNT_LOCAL_BYTES,        /* bytes those calls moved */
  TAP_CNT_MAX,
};

struct tap_hdr {
  __u32 type;  /* enum tap_event_type */
  __u32 tgid;  /* process */
  __u32 tid;   /* thread */
  __s32 fd;    /* socket fd, -1 when unknown */
  __u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
  __u64 conn;  /* connection identity within tgid: the SSL*; socket records: 0, or the socket
                  cookie on the keys path (TAP_EV_CIPHER, TAP_EV_SOCK, TAP_EV_SOCK_CLOSE) */
};

struct tap_data {
  struct tap_hdr hdr;
  __u64 pos;      /* stream offset of this chunk's first byte in its direction */
  __u32 call_len; /* bytes the SSL call moved (the original length) */
  __u32 offset;   /* offset of this chunk within the call */
  __u32 len;      /* payload bytes in this record */
  __u8 dir;       /* enum tap_direction */
  __u8 pad[3];
  __u8 data[TAP_CHUNK_BYTES]; /* only the first len bytes are sent */
};

struct tap_sock {
  struct tap_hdr hdr;
  __u32 role;       /* enum tap_sock_role */
  __u16 family;     /* AF_INET or AF_INET6; 0 when unknown */
  __u16 port;       /* peer port, host order */
  __u8 addr[16];    /* peer address: 4 bytes for AF_INET, 16 for AF_INET6 */
  __u16 local_port; /* the socket's own port, host order; 0 when unknown */
  __u8 pad[6];
};

struct tap_conn_end {
  struct tap_hdr hdr;
  __u64 read_pos;  /* total bytes read on the connection */
  __u64 write_pos; /* total bytes written */
};

#define TAP_UNIX_PATH_MAX 108u /* sizeof(sockaddr_un.sun_path) */
#define TAP_COMM_LEN 16u

/*
 * A local connection's peer, from the accepted socket: sk_peer_pid and sk_peer_cred, which the
 * kernel set from the connecting process at connect (what SO_PEERCRED returns), and the address
 * the listening socket was bound to, which the accepted socket shares.
 */
struct tap_local_sock {
  struct tap_hdr hdr; /* conn: the socket's cookie; fd: the target's fd, -1 unknown */
  __u32 peer_pid;     /* host pid (init namespace) of the connecting process, 0 none */
  __u32 peer_uid;     /* its effective uid and gid (host ids) at connect */
  __u32 peer_gid;
  __u32 path_len;               /* bytes of path: sun_path as bound (abstract: path[0] == 0) */
  __u8 peer_comm[TAP_COMM_LEN]; /* the peer's command name when the socket was first seen
                                   (its thread group leader's), NUL-padded; empty if gone */
  __u8 path[TAP_UNIX_PATH_MAX]; /* the listening socket's address */
  __u8 pad[4];
};

/*
 * The first certificate the peer sent during a connection's handshake (its leaf), as the TLS
 * library parsed it (d2i_X509 in OpenSSL, crypto/x509.ParseCertificate in Go), before any
 * data moved on the connection. hdr.conn names the connection as data records do.
 */
struct tap_cert {
  struct tap_hdr hdr;
  __u32 len;      /* the certificate's DER length */
  __u32 captured; /* bytes in data: len, or TAP_CERT_MAX when the certificate is longer */
  __u8 data[TAP_CERT_MAX];
};

/*
 * Offsets into a libssl build's private structures, found at run time by calibration
 * (userspace/tap/ssl_layout), one per target process in the BPF map `ssl_layouts`. The kernel
 * reads the secrets of an SSL object at the return of its handshake with them.
 */
struct tap_ssl_layout {
  __u32 version;           /* SSL: int version (0x0303 TLS 1.2, 0x0304 TLS 1.3) */
  __u32 client_random;     /* SSL: the ClientHello's random, 32 bytes */
  __u32 client_app_secret; /* SSL: TLS 1.3 client application traffic secret, 64 bytes */
  __u32 server_app_secret; /* SSL: TLS 1.3 server application traffic secret, 64 bytes */
  __u32 session;           /* SSL: the SSL_SESSION pointer */
  __u32 master_key;        /* SSL_SESSION: the TLS 1.2 master secret, 48 bytes */
  __u32 pad[2];
};

/*
 * Attach at exec: a process is reported as it forks or execs, so userspace probes it before it
 * serves. hdr.tgid is the process, hdr.ts_ns the time of the fork or exec, hdr.fd -1.
 */
#define TAP_COMM_LEN 16u        /* the kernel's TASK_COMM_LEN */
#define TAP_MAX_WATCH_COMMS 64u /* --comm names matched at exec */
struct tap_proc {
  struct tap_hdr hdr;
  __u32 kind;   /* enum tap_proc_kind */
  __u32 parent; /* fork: the parent's tgid; exec: 0 */
  __u8 comm[TAP_COMM_LEN];
};

#define TAP_SECRET_MAX 64u /* bytes of a secret carried, at most (EVP_MAX_MD_SIZE) */

struct tap_secret {
  struct tap_hdr hdr; /* conn: the SSL* or *tls.Conn (0 when unknown); fd: -1 */
  __u32 label;        /* enum tap_secret_label */
  __u32 len;          /* bytes of secret that are meaningful: Go: as logged; OpenSSL: 48
                         (master) or 64 (the cipher suite's hash length says how many) */
  __u16 source;       /* enum tap_secret_source */
  __u16 version;      /* the TLS version when the kernel knows it (OpenSSL), else 0 */
  __u32 pad;
  __u8 client_random[32]; /* ties the secret to the connection's ClientHello */
  __u8 secret[TAP_SECRET_MAX];
};

/*
 * Probes attached once per TLS library file for every process that maps it (pid -1; the
 * programs filter on the `targets` map, so a forked child of a target is covered from its
 * first instruction): the upper 32 bits of their attach cookie are the file's number (from 1),
 * which keys the BPF map `file_layouts`; 0 is a probe attached for one process.
 */
#define TAP_MAX_SHARED_FILES 128u
#define TAP_COOKIE_FILE_SHIFT 32

#define TAP_DATA_HDR_BYTES __builtin_offsetof(struct tap_data, data)
#define TAP_CERT_HDR_BYTES __builtin_offsetof(struct tap_cert, data)

#endif /* MKE_AUDIT_TAP_TAP_EVENTS_H */
