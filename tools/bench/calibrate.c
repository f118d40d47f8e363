// Calibration for the benchmark (tools/bench/bench.py): what a syscall and a uprobe hit cost on
// this machine, and what small syscalls of a process that is NOT audited cost (run once without
// and once with an auditor on the node).
//
//   calibrate syscall N ROUNDS       ns per getppid()
//   calibrate probe KIND N ROUNDS    ns per uprobe hit: KIND push|nop|nop5|sub (entry probe on that
//                                    first instruction) or uretprobe (entry + return of the push
//                                    function); each round runs the loop without and with the
//                                    probe attached (a BPF program that returns 0)
//   calibrate zero N ROUNDS          ns per 64-byte read() of /dev/zero
//   calibrate unix N ROUNDS          ns per 64-byte write()+read() pair over an AF_UNIX socketpair
//   calibrate tcp N ROUNDS           ns per 64-byte write()+read() pair over loopback TCP
//   calibrate symbols                the probed functions' names, addresses and file offsets
//
// Each round prints one JSON object on stdout. Times are the thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID, kernel time included), so another process on the machine does not
// inflate them by preempting the loop.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// The probed functions, in assembly so that their first instruction is known: `push %rbp` and
// the one-byte `nop` are emulated by the kernel's uprobe code (no single-step); the five-byte
// `nopl 0x0(%rax,%rax,1)` is the instruction newer kernels can turn into a call to a uprobe
// trampoline instead of a trap; `sub $0x18,%rsp` (how Debian's SSL_read and SSL_write begin) is
// single-stepped.
__asm__(
    ".text\n"
    ".globl cal_push\n"
    ".type cal_push,@function\n"
    "cal_push:\n"
    "  push %rbp\n"
    "  mov %rsp,%rbp\n"
    "  pop %rbp\n"
    "  ret\n"
    ".size cal_push,.-cal_push\n"
    ".globl cal_nop\n"
    ".type cal_nop,@function\n"
    "cal_nop:\n"
    "  nop\n"
    "  ret\n"
    ".size cal_nop,.-cal_nop\n"
    ".globl cal_nop5\n"
    ".type cal_nop5,@function\n"
    "cal_nop5:\n"
    "  .byte 0x0f,0x1f,0x44,0x00,0x00\n"
    "  ret\n"
    ".size cal_nop5,.-cal_nop5\n"
    ".globl cal_sub\n"
    ".type cal_sub,@function\n"
    "cal_sub:\n"
    "  sub $0x18,%rsp\n"
    "  add $0x18,%rsp\n"
    "  ret\n"
    ".size cal_sub,.-cal_sub\n");
void cal_push(void);
void cal_nop(void);
void cal_nop5(void);
void cal_sub(void);

static void die(const char* what) {
  fprintf(stderr, "calibrate: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// File offset of a function of this executable, from the mapping that holds it.
static uint64_t file_offset(uintptr_t fn) {
  FILE* maps = fopen("/proc/self/maps", "r");
  if (!maps) die("/proc/self/maps");
  char line[512];
  uint64_t addr = (uint64_t)fn;
  uint64_t result = 0;
  while (fgets(line, sizeof line, maps)) {
    uint64_t start, end, off;
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64, &start, &end, &off) == 3 &&
        addr >= start && addr < end) {
      result = addr - start + off;
      break;
    }
  }
  fclose(maps);
  if (!result) {
    fprintf(stderr, "calibrate: %#" PRIxPTR " is in no mapping\n", fn);
    exit(1);
  }
  return result;
}

// An unsigned value from a sysfs file ("7\n") or a format file ("config:0\n").
static unsigned read_sysfs_number(const char* path) {
  FILE* f = fopen(path, "r");
  if (!f) die(path);
  char buf[64] = {0};
  if (!fgets(buf, sizeof buf, f)) die(path);
  fclose(f);
  const char* p = strchr(buf, ':');
  return (unsigned)strtoul(p ? p + 1 : buf, NULL, 10);
}

static int load_trivial_program(void) {
  struct bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT},
  };
  int fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "cal_nothing", "GPL", insns, 2, NULL);
  if (fd < 0) {
    errno = -fd;
    die("bpf_prog_load");
  }
  return fd;
}

// A uprobe (or uretprobe) on this process only, at `offset` of our executable, running `prog`.
static int attach(uint64_t offset, int retprobe, int prog) {
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) die("readlink /proc/self/exe");
  exe[n] = 0;
  struct perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = read_sysfs_number("/sys/bus/event_source/devices/uprobe/type");
  if (retprobe)
    attr.config = 1ull << read_sysfs_number("/sys/bus/event_source/devices/uprobe/format/retprobe");
  attr.config1 = (uint64_t)(uintptr_t)exe;
  attr.config2 = offset;
  int fd =
      (int)syscall(SYS_perf_event_open, &attr, 0 /* this process */, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) die("perf_event_open(uprobe)");
  if (ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog) < 0) die("PERF_EVENT_IOC_SET_BPF");
  if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0) die("PERF_EVENT_IOC_ENABLE");
  return fd;
}

static double loop_ns(void (*fn)(void), long n) {
  uint64_t t0 = cpu_ns();
  for (long i = 0; i < n; ++i) fn();
  return (double)(cpu_ns() - t0) / (double)n;
}

static void call_getppid(void) { (void)syscall(SYS_getppid); }

static void run_probe(const char* kind, long n, int rounds) {
  void (*fn)(void) = cal_push;
  int retprobe = 0;
  if (!strcmp(kind, "nop"))
    fn = cal_nop;
  else if (!strcmp(kind, "nop5"))
    fn = cal_nop5;
  else if (!strcmp(kind, "sub"))
    fn = cal_sub;
  else if (!strcmp(kind, "uretprobe"))
    retprobe = 1;
  else if (strcmp(kind, "push")) {
    fprintf(stderr, "calibrate: unknown probe kind %s\n", kind);
    exit(2);
  }
  uint64_t offset = file_offset((uintptr_t)fn);
  int prog = load_trivial_program();
  loop_ns(fn, n / 10 + 1);  // warm up
  for (int r = 0; r < rounds; ++r) {
    double without = loop_ns(fn, n);
    int fd = attach(offset, retprobe, prog);
    loop_ns(fn, 100);  // the first hits set up per-process state
    double with = loop_ns(fn, n);
    close(fd);
    printf(
        "{\"mode\":\"probe\",\"kind\":\"%s\",\"round\":%d,\"n\":%ld,\"without_ns\":%.2f,"
        "\"with_ns\":%.2f,\"ns_per_op\":%.2f}\n",
        kind, r, n, without, with, with - without);
    fflush(stdout);
  }
  close(prog);
}

static void connect_tcp_pair(int fds[2]) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) < 0 || listen(listener, 1) < 0 ||
      getsockname(listener, (struct sockaddr*)&addr, &len) < 0)
    die("listen");
  fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fds[0] < 0 || connect(fds[0], (struct sockaddr*)&addr, sizeof addr) < 0) die("connect");
  fds[1] = accept(listener, NULL, NULL);
  if (fds[1] < 0) die("accept");
  close(listener);
  int one = 1;
  setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void run_io(const char* mode, long n, int rounds) {
  char buf[64] = {0};
  int fds[2] = {-1, -1};
  if (!strcmp(mode, "zero")) {
    fds[0] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    if (fds[0] < 0) die("/dev/zero");
  } else if (!strcmp(mode, "unix")) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) die("socketpair");
  } else {
    connect_tcp_pair(fds);
  }
  const int pair = fds[1] >= 0;
  for (int r = -1; r < rounds; ++r) {  // round -1 warms up
    uint64_t t0 = cpu_ns();
    for (long i = 0; i < n; ++i) {
      if (pair && write(fds[0], buf, sizeof buf) != (ssize_t)sizeof buf) die("write");
      size_t got = 0;
      while (got < sizeof buf) {
        ssize_t k = read(fds[pair], buf + got, sizeof buf - got);
        if (k <= 0) die("read");
        got += (size_t)k;
      }
    }
    double ns = (double)(cpu_ns() - t0) / (double)n;
    if (r >= 0) {
      printf("{\"mode\":\"%s\",\"round\":%d,\"n\":%ld,\"ns_per_op\":%.2f}\n", mode, r, n, ns);
      fflush(stdout);
    }
  }
  close(fds[0]);
  if (pair) close(fds[1]);
}

int main(int argc, char** argv) {
  if (argc == 2 && !strcmp(argv[1], "symbols")) {
    const struct {
      const char* name;
      void (*fn)(void);
    } fns[] = {
        {"cal_push", cal_push}, {"cal_nop", cal_nop}, {"cal_nop5", cal_nop5}, {"cal_sub", cal_sub}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; ++i)
      printf("{\"symbol\":\"%s\",\"file_offset\":%" PRIu64 "}\n", fns[i].name,
             file_offset((uintptr_t)fns[i].fn));
    return 0;
  }
  const int probe = argc == 5 && !strcmp(argv[1], "probe");
  if (argc != 4 && !probe) {
    fprintf(stderr,
            "usage: %s syscall|zero|unix|tcp N ROUNDS | probe push|nop|nop5|sub|uretprobe N ROUNDS "
            "| symbols\n",
            argv[0]);
    return 2;
  }
  long n = strtol(argv[probe ? 3 : 2], NULL, 10);
  int rounds = (int)strtol(argv[probe ? 4 : 3], NULL, 10);
  if (n <= 0 || rounds <= 0) {
    fprintf(stderr, "calibrate: N and ROUNDS must be positive\n");
    return 2;
  }
  if (probe) {
    run_probe(argv[2], n, rounds);
  } else if (!strcmp(argv[1], "syscall")) {
    loop_ns(call_getppid, n / 10 + 1);
    for (int r = 0; r < rounds; ++r)
      printf("{\"mode\":\"syscall\",\"round\":%d,\"n\":%ld,\"ns_per_op\":%.2f}\n", r, n,
             loop_ns(call_getppid, n));
  } else if (!strcmp(argv[1], "zero") || !strcmp(argv[1], "unix") || !strcmp(argv[1], "tcp")) {
    run_io(argv[1], n, rounds);
  } else {
    fprintf(stderr, "calibrate: unknown mode %s\n", argv[1]);
    return 2;
  }
  return 0;
}
