/*
 * Test-only LD_PRELOAD shim for mke-audit-tap-sslcal (ssl_layout_test): wraps the helper's
 * dlsym so that the key log callback it installs also writes each key log line to the file
 * descriptor named by MAT_TEST_KEYLOG_FD. The test reads them into memory to check that the
 * helper's own outputs never carry any of its secrets. Never part of the product.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*keylog_cb)(const void* ssl, const char* line);
typedef void (*set_keylog_fn)(void* ctx, keylog_cb cb);

static keylog_cb helper_cb;
static set_keylog_fn real_set_keylog;

typedef void* (*dlsym_fn)(void*, const char*);

static void* real_dlsym(void* handle, const char* name) {
  static dlsym_fn next;
  if (next == NULL) {
    void* p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (p == NULL) p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    if (p == NULL) abort();
    memcpy(&next, &p, sizeof(p)); /* object to function pointer, as POSIX allows */
  }
  return next(handle, name);
}

static void tee_keylog(const void* ssl, const char* line) {
  const char* fd_text = getenv("MAT_TEST_KEYLOG_FD");
  if (fd_text != NULL) {
    int fd = atoi(fd_text);
    static int said_uid;
    if (!said_uid) { /* who runs the library's code */
      char text[64];
      int n = snprintf(text, sizeof(text), "#uid %u %u\n", (unsigned)getuid(), (unsigned)geteuid());
      if (write(fd, text, (size_t)n) != n) abort();
      said_uid = 1;
    }
    size_t len = strlen(line);
    if (write(fd, line, len) != (ssize_t)len || write(fd, "\n", 1) != 1) abort();
  }
  helper_cb(ssl, line);
}

static void wrapped_set_keylog(void* ctx, keylog_cb cb) {
  helper_cb = cb;
  real_set_keylog(ctx, tee_keylog);
}

void* dlsym(void* handle, const char* name) {
  void* p = real_dlsym(handle, name);
  if (p != NULL && strcmp(name, "SSL_CTX_set_keylog_callback") == 0) {
    set_keylog_fn wrapper = wrapped_set_keylog;
    void* out;
    memcpy(&real_set_keylog, &p, sizeof(p));
    memcpy(&out, &wrapper, sizeof(out));
    return out;
  }
  return p;
}
