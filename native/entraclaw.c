// Entraclaw's native addon: the few kernel facilities Node does not expose (peer and per-message
// credentials, pidfds, flock, dump hardening, the Linux kernel keyring). Plain C on Node-API so it
// builds with only the headers of the Node that runs it. Every failure throws an Error whose `.code`
// is the errno name and whose `.errno` is the negative errno, as Node's own system errors do.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#ifdef __APPLE__
#include <bsm/libbsm.h>
#include <libproc.h>
#endif

#ifdef __linux__
// Newer than Debian 12's headers; the values are the kernel ABI (since 6.5).
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 4
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
// <linux/keyctl.h> constants; spelled out so the addon needs neither libkeyutils nor its headers.
#define EC_KEYCTL_DESCRIBE 6
#define EC_KEYCTL_UNLINK 9
#define EC_KEYCTL_SEARCH 10
#define EC_KEYCTL_READ 11
#define EC_KEYCTL_SET_TIMEOUT 15
#define EC_KEYCTL_INVALIDATE 21
#endif

// One stream read, as the daemon's framing expects; larger frames simply span several reads.
#define READ_BUFFER_BYTES (64 * 1024)
// The kernel accepts at most 253 fds per message (SCM_MAX_FD). Room for all of them keeps a sender
// from pushing SCM_PIDFD (always last) out of the control buffer with a pile of SCM_RIGHTS.
#define MAX_PASSED_FDS 253
// Reads per wakeup before yielding to the event loop; the poll is level-triggered, so the rest of the
// data wakes it again and one busy client cannot starve the others.
#define MAX_READS_PER_WAKEUP 64

// ---------------------------------------------------------------------------------------------------
// Errors and argument checks

static const char *errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case ENOTSOCK: return "ENOTSOCK";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ECONNRESET: return "ECONNRESET";
    case ENOTCONN: return "ENOTCONN";
    case EDQUOT: return "EDQUOT";
    case ENODATA: return "ENODATA";
#ifdef __linux__
    case ENOKEY: return "ENOKEY";
    case EKEYEXPIRED: return "EKEYEXPIRED";
    case EKEYREVOKED: return "EKEYREVOKED";
    case EKEYREJECTED: return "EKEYREJECTED";
#endif
    default: return "EUNKNOWN";
  }
}

// Throws Error(`${syscall}: ${strerror}`) with .code, .errno and .syscall; returns NULL for `return`.
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(err));
  napi_value msg, code, error, num, sys;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

static napi_value make_undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

static napi_value make_bool(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

static napi_value make_int(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

// Fetches exactly `want` arguments; false (with a TypeError thrown) when fewer were passed.
static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    throw_type(env, "missing arguments");
    return false;
  }
  return true;
}

static bool get_int(napi_env env, napi_value v, const char *name, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    char text[96];
    snprintf(text, sizeof text, "%s must be a number", name);
    throw_type(env, text);
    return false;
  }
  return true;
}

static bool get_bool(napi_env env, napi_value v, const char *name, bool *out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    char text[96];
    snprintf(text, sizeof text, "%s must be a boolean", name);
    throw_type(env, text);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Peer credentials

static napi_value make_cred(napi_env env, int64_t pid, int64_t uid, int64_t gid, int64_t pidfd) {
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "pid", make_int(env, pid));
  napi_set_named_property(env, obj, "uid", make_int(env, uid));
  napi_set_named_property(env, obj, "gid", make_int(env, gid));
  napi_set_named_property(env, obj, "pidfd", make_int(env, pidfd));
  return obj;
}

// The kernel's record of the other end of a connected Unix socket (Linux SO_PEERCRED; macOS getpeereid
// and LOCAL_PEERPID). Returns 0, or -1 with errno set and *failed naming the call.
static int read_peer(int fd, pid_t *pid, uid_t *uid, gid_t *gid, const char **failed) {
#ifdef __linux__
  struct ucred uc;
  socklen_t len = sizeof uc;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
    *failed = "getsockopt";
    return -1;
  }
  *pid = uc.pid;
  *uid = uc.uid;
  *gid = uc.gid;
  return 0;
#elif defined(__APPLE__)
  socklen_t len = sizeof *pid;
  if (getpeereid(fd, uid, gid) < 0) {
    *failed = "getpeereid";
    return -1;
  }
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, pid, &len) < 0) {
    *failed = "getsockopt";
    return -1;
  }
  return 0;
#else
  (void)fd;
  (void)pid;
  (void)uid;
  (void)gid;
  *failed = "peer credentials";
  errno = ENOSYS;
  return -1;
#endif
}

static napi_value js_peer_cred(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  pid_t pid;
  uid_t uid;
  gid_t gid;
  const char *failed;
  if (read_peer(fd, &pid, &uid, &gid, &failed) < 0) return throw_errno(env, errno, failed);
  int pidfd = -1;
#ifdef __linux__
  socklen_t len = sizeof pidfd;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
    // Kernels before 6.5 lack the option; any other failure (peer gone) must not pass as "no pidfd".
    if (errno != ENOPROTOOPT) return throw_errno(env, errno, "getsockopt(SO_PEERPIDFD)");
    pidfd = -1;
  }
#endif
  return make_cred(env, pid, uid, gid, pidfd);
}

// peerUid(fd): the uid of the process that created the other end of a connected Unix socket, as the
// kernel recorded it, without the pidfd peerCred opens. The client asks it of the daemon's socket
// before sending a byte: a socket path another user could have planted leads to their server, not ours.
static napi_value js_peer_uid(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  pid_t pid;
  uid_t uid;
  gid_t gid;
  const char *failed;
  if (read_peer(fd, &pid, &uid, &gid, &failed) < 0) return throw_errno(env, errno, failed);
  return make_int(env, (int64_t)uid);
}

#ifdef __linux__
// SO_PASSCRED (+ SO_PASSPIDFD where the kernel has it). The kernel (seen on 6.18) attaches credentials to
// bytes only if the receiver had asked for them when they were sent: set on a listening socket, the
// option is inherited at connect(), so even bytes a client writes before accept() carry their sender.
static int enable_pass_cred(int fd, const char **failed) {
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
    *failed = "setsockopt(SO_PASSCRED)";
    return -1;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_PASSPIDFD, &one, sizeof one) < 0 && errno != ENOPROTOOPT) {
    *failed = "setsockopt(SO_PASSPIDFD)";
    return -1;
  }
  return 0;
}
#endif

static napi_value js_pass_cred(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
#ifdef __linux__
  const char *failed;
  if (enable_pass_cred(fd, &failed) < 0) return throw_errno(env, errno, failed);
#endif
  return make_undefined(env);
}

// ---------------------------------------------------------------------------------------------------
// Per-message reader

typedef struct reader {
  uv_poll_t poll;
  napi_env env;
  int fd;  // our dup; libuv's watcher on the original fd stays untouched
  napi_ref cb;
  napi_ref self;  // keeps the JS handle (and so this struct) alive while reading
  napi_async_context async;
  bool active;
  bool uv_closed;     // uv's close callback has run (or uv never held the handle)
  bool wrapper_gone;  // the JS handle was finalized
  char *buf;
  char *control;
  size_t control_len;
} reader_t;

// Marks handles made by startReader, so stopReader never unwraps another addon's object as ours.
static const napi_type_tag READER_TAG = {0x656e747261636c61ULL, 0x7772656164657231ULL};

static void reader_free_if_unowned(reader_t *r) {
  if (!r->uv_closed || !r->wrapper_gone) return;
  free(r->buf);
  free(r->control);
  free(r);
}

static void on_poll_closed(uv_handle_t *h) {
  reader_t *r = h->data;
  r->uv_closed = true;
  reader_free_if_unowned(r);
}

static void on_wrapper_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  reader_t *r = data;
  r->wrapper_gone = true;
  reader_free_if_unowned(r);
}

static void env_cleanup(void *arg);

// Safe from inside the reader's own callback: the poll loop checks `active` after every call.
static void reader_stop(reader_t *r, bool from_cleanup_hook) {
  if (!r->active) return;
  r->active = false;
  uv_close((uv_handle_t *)&r->poll, on_poll_closed);
  // uv_close has already removed the fd from epoll, so closing it now is safe and frees it promptly.
  close(r->fd);
  r->fd = -1;
  napi_delete_reference(r->env, r->cb);
  napi_async_destroy(r->env, r->async);
  if (!from_cleanup_hook) napi_remove_env_cleanup_hook(r->env, env_cleanup, r);
  // Last: this may let the wrapper (and with it `r`) be collected.
  napi_delete_reference(r->env, r->self);
}

// A Worker's loop must hold no live handles when it ends, or Node aborts.
static void env_cleanup(void *arg) { reader_stop(arg, true); }

// Calls the JS callback; a throw becomes an uncaught exception, as from any event listener.
static void reader_emit(reader_t *r, int argc, napi_value *argv) {
  napi_env env = r->env;
  napi_value cb, self, result;
  napi_get_reference_value(env, r->cb, &cb);
  napi_get_reference_value(env, r->self, &self);
  napi_make_callback(env, r->async, self, cb, argc, argv, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

static void reader_emit_error(reader_t *r, int err, const char *syscall) {
  napi_env env = r->env;
  throw_errno(env, err, syscall);
  napi_value exc, nul;
  napi_get_and_clear_last_exception(env, &exc);
  napi_get_null(env, &nul);
  napi_value argv[3] = {exc, nul, nul};
  reader_emit(r, 3, argv);
}

// Closes every fd a peer pushed at us: the daemon never accepts descriptors.
static void close_passed_fds(struct cmsghdr *c) {
  size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
  int *fds = (int *)CMSG_DATA(c);
  for (size_t i = 0; i < n; i++) {
    int fd;
    memcpy(&fd, fds + i, sizeof fd);
    close(fd);
  }
}

// One recvmsg: 1 = delivered a full buffer (more may wait), 2 = delivered less (the socket had no more
// then; the level-triggered poll reports whatever comes later), 0 = EOF (reader stopped), -1 = would
// block, -2 = error (stopped).
static int reader_read_one(reader_t *r) {
  napi_env env = r->env;
  struct iovec iov = {.iov_base = r->buf, .iov_len = READ_BUFFER_BYTES};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = r->control;
  msg.msg_controllen = r->control_len;
  int flags = 0;
#ifdef MSG_CMSG_CLOEXEC
  flags |= MSG_CMSG_CLOEXEC;
#endif
  ssize_t n;
  do {
    n = recvmsg(r->fd, &msg, flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    int err = errno;
    reader_emit_error(r, err, "recvmsg");
    reader_stop(r, false);
    return -2;
  }
  // Unknown until the kernel says otherwise: JS must refuse a message whose sender is -1.
  int64_t pid = -1, uid = -1, gid = -1, pidfd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_RIGHTS) {
      close_passed_fds(c);
#ifdef __linux__
    } else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
      struct ucred uc;
      memcpy(&uc, CMSG_DATA(c), sizeof uc);
      // pid 0 (with the overflow uid) means the bytes were sent before anyone asked for credentials.
      if (uc.pid > 0) {
        pid = uc.pid;
        uid = uc.uid;
        gid = uc.gid;
      }
    } else if (c->cmsg_type == SCM_PIDFD && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
      // A negative value is the kernel's error for a sender it could not make a pidfd for.
      if (fd >= 0) {
        if (pidfd >= 0) close((int)pidfd);
        pidfd = fd;
      }
#endif
    }
  }
#ifdef __APPLE__
  // No per-message credentials on macOS: the best available is the peer as of now.
  {
    uid_t u;
    gid_t g;
    pid_t p;
    socklen_t len = sizeof p;
    if (getpeereid(r->fd, &u, &g) == 0 && getsockopt(r->fd, SOL_LOCAL, LOCAL_PEERPID, &p, &len) == 0) {
      pid = p;
      uid = u;
      gid = g;
    }
  }
#endif
  napi_value nul;
  napi_get_null(env, &nul);
  if (n == 0) {
    if (pidfd >= 0) close((int)pidfd);
    napi_value argv[3] = {nul, nul, nul};
    reader_emit(r, 3, argv);
    reader_stop(r, false);
    return 0;
  }
  napi_value data;
  napi_create_buffer_copy(env, (size_t)n, r->buf, NULL, &data);
  // The bytes may be a secret being stored: do not leave a copy in our buffer.
  memset(r->buf, 0, (size_t)n);
  napi_value argv[3] = {nul, data, make_cred(env, pid, uid, gid, pidfd)};
  reader_emit(r, 3, argv);
  return (size_t)n == READ_BUFFER_BYTES ? 1 : 2;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  reader_t *r = h->data;
  if (!r->active) return;
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  if (status < 0) {
    reader_emit_error(r, -status, "uv_poll");
    reader_stop(r, false);
  } else {
    for (int i = 0; i < MAX_READS_PER_WAKEUP && r->active; i++) {
      if (reader_read_one(r) != 1) break;
    }
  }
  napi_close_handle_scope(r->env, scope);
}

static napi_value js_start_reader(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_type(env, "cb must be a function");

  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return throw_errno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
  int fl = fcntl(dup_fd, F_GETFL);
  if (fl < 0 || fcntl(dup_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = errno;
    close(dup_fd);
    return throw_errno(env, err, "fcntl(O_NONBLOCK)");
  }
#ifdef __linux__
  const char *failed;
  if (enable_pass_cred(dup_fd, &failed) < 0) {
    int err = errno;
    close(dup_fd);
    return throw_errno(env, err, failed);
  }
  size_t control_len = CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int)) +
                       CMSG_SPACE(MAX_PASSED_FDS * sizeof(int));
#else
  size_t control_len = CMSG_SPACE(MAX_PASSED_FDS * sizeof(int));
#endif

  reader_t *r = calloc(1, sizeof *r);
  char *buf = malloc(READ_BUFFER_BYTES);
  char *control = malloc(control_len);
  if (r == NULL || buf == NULL || control == NULL) {
    free(r);
    free(buf);
    free(control);
    close(dup_fd);
    return throw_errno(env, ENOMEM, "startReader");
  }
  r->env = env;
  r->fd = dup_fd;
  r->buf = buf;
  r->control = control;
  r->control_len = control_len;
  r->uv_closed = true;  // until uv owns the handle

  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init(loop, &r->poll, dup_fd);
  if (rc < 0) {
    free(buf);
    free(control);
    free(r);
    close(dup_fd);
    return throw_errno(env, -rc, "uv_poll_init");
  }
  r->poll.data = r;
  r->uv_closed = false;
  r->active = true;

  napi_value handle, name;
  napi_create_object(env, &handle);
  napi_type_tag_object(env, handle, &READER_TAG);
  napi_wrap(env, handle, r, on_wrapper_finalized, NULL, NULL);
  napi_create_reference(env, handle, 1, &r->self);
  napi_create_reference(env, argv[1], 1, &r->cb);
  napi_create_string_utf8(env, "entraclaw:reader", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, handle, name, &r->async);
  napi_add_env_cleanup_hook(env, env_cleanup, r);

  rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    reader_stop(r, false);
    return throw_errno(env, -rc, "uv_poll_start");
  }
  return handle;
}

static napi_value js_stop_reader(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  reader_t *r = NULL;
  bool tagged = false;
  napi_check_object_type_tag(env, argv[0], &READER_TAG, &tagged);
  if (!tagged || napi_unwrap(env, argv[0], (void **)&r) != napi_ok || r == NULL) {
    return throw_type(env, "handle must come from startReader");
  }
  reader_stop(r, false);
  return make_undefined(env);
}

// ---------------------------------------------------------------------------------------------------
// Small /proc reads

#ifdef __linux__
// Reads a small /proc file whole into buf (NUL-terminated); returns its length or -errno.
static ssize_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return -err;
    }
    if (n == 0 || (len += (size_t)n) == size - 1) break;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

// Reads a /proc file through an fd held open since earlier (pread from 0 regenerates it), or -errno.
// An fd of /proc/<pid>/stat or status stays bound to the process it was opened for: once that process
// has exited, reads fail (ESRCH) even if its pid number was given to another one.
// A /proc file of one record (stat, status) is generated whole on the first read, so a read that
// returns less than asked for has returned all of it: no second read just to see the end.
static ssize_t read_held(int fd, char *buf, size_t size) {
  size_t len = 0;
  for (;;) {
    size_t want = size - 1 - len;
    ssize_t n = pread(fd, buf + len, want, (off_t)len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    len += (size_t)n;
    if ((size_t)n < want || len == size - 1) break;
  }
  buf[len] = '\0';
  return (ssize_t)len;
}

// Sets *pid to the pid a pidfd refers to, from /proc/self/fdinfo (-1 once it has exited); returns 0, or
// -errno (-EINVAL when the fd is no pidfd: no Pid line, and guessing would fail open).
static int pidfd_pid(int pidfd, long *pid) {
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
  ssize_t n = read_small(path, text, sizeof text);
  if (n < 0) return (int)n;
  const char *line = strstr(text, "\nPid:");
  if (line == NULL) return -EINVAL;
  *pid = strtol(line + 5, NULL, 10);
  return 0;
}
#endif

// ---------------------------------------------------------------------------------------------------
// pidfds

static napi_value js_pidfd_alive(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t pidfd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "pidfd", &pidfd)) return NULL;
#ifdef __linux__
  long pid;
  int rc = pidfd_pid(pidfd, &pid);
  if (rc < 0) return throw_errno(env, -rc, rc == -EINVAL ? "pidfdAlive" : "read(/proc/self/fdinfo)");
  return make_bool(env, pid > 0);
#else
  return throw_errno(env, ENOSYS, "pidfdAlive");
#endif
}

static napi_value js_pidfd_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t pid;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "pid", &pid)) return NULL;
#ifdef __linux__
  // pidfd_open always returns a close-on-exec fd.
  long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0U);
  if (fd < 0) {
    if (errno == ENOSYS) return make_int(env, -1);
    return throw_errno(env, errno, "pidfd_open");
  }
  return make_int(env, fd);
#else
  return make_int(env, -1);
#endif
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  // After EINTR the fd is already gone on Linux; retrying could close someone else's.
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return make_undefined(env);
}

// pipe(): a pipe as [readFd, writeFd], both close-on-exec. A child's stdout given by spawn's 'pipe' is a
// Unix socket (libuv makes a socketpair), and on Linux opening /dev/stdout or /dev/stderr onto a socket
// fails (ENXIO): `echo x > /dev/stderr`, `tee /dev/stdout`. Given a real pipe, the command sees what a
// shell would give it. Close-on-exec: spawn dup2()s the write end onto the child's fd, so no other
// process we start gets either end.
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe(fds) < 0) return throw_errno(env, errno, "pipe");
  for (int i = 0; i < 2; i++) {
    int flags = fcntl(fds[i], F_GETFD);
    if (flags < 0 || fcntl(fds[i], F_SETFD, flags | FD_CLOEXEC) < 0) {
      int err = errno;
      close(fds[0]);
      close(fds[1]);
      return throw_errno(env, err, "fcntl(FD_CLOEXEC)");
    }
  }
  napi_value pair;
  napi_create_array_with_length(env, 2, &pair);
  napi_set_element(env, pair, 0, make_int(env, fds[0]));
  napi_set_element(env, pair, 1, make_int(env, fds[1]));
  return pair;
}

// peerToken(fd) (macOS): the peer's audit token (LOCAL_PEERTOKEN, taken by the kernel at connect()) as
// { pid, uid, gid, pidversion, exe }. exe comes from proc_pidpath_audittoken, which checks the token's
// pidversion against the live process, so a pid that was reused since connect() fails (ESRCH) rather
// than naming another program. Call it again after hashing exe: the same pidversion and path mean the
// hash describes the process that connected. Compiled and reviewed; tested on Linux it only throws ENOSYS.
static napi_value js_peer_token(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
#ifdef __APPLE__
  audit_token_t token;
  socklen_t len = sizeof token;
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERTOKEN, &token, &len) < 0) {
    return throw_errno(env, errno, "getsockopt(LOCAL_PEERTOKEN)");
  }
  char path[PROC_PIDPATHINFO_MAXSIZE];
  // macOS 11 added it; node-gyp builds for 10.15 (Node 20's floor), where the weak symbol is NULL and a
  // call would crash the daemon: there every caller is refused instead.
  if (__builtin_available(macOS 11.0, *)) {
    errno = 0;
    if (proc_pidpath_audittoken(&token, path, sizeof path) <= 0) {
      return throw_errno(env, errno ? errno : ESRCH, "proc_pidpath_audittoken");
    }
  } else {
    return throw_errno(env, ENOSYS, "proc_pidpath_audittoken");
  }
  napi_value obj, exe;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "pid", make_int(env, audit_token_to_pid(token)));
  napi_set_named_property(env, obj, "uid", make_int(env, audit_token_to_euid(token)));
  napi_set_named_property(env, obj, "gid", make_int(env, audit_token_to_egid(token)));
  napi_set_named_property(env, obj, "pidversion", make_int(env, audit_token_to_pidversion(token)));
  napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &exe);
  napi_set_named_property(env, obj, "exe", exe);
  return obj;
#else
  (void)fd;
  return throw_errno(env, ENOSYS, "peerToken");
#endif
}

// ---------------------------------------------------------------------------------------------------
// Watching an identified process (identity/watch.ts): one call, no allocation in JS per file read.

// procLook(pid, envFd, statFd, statusFd) -> { state, tracerPid, uids, layout, exe, envAlive, userns }.
// statFd/statusFd: held fds of /proc/<pid>/stat and status (-1: open them by path now).
// layout is /proc/<pid>/stat's start time and memory layout (code, stack, data, brk, argv and environ
// addresses), which exec replaces; envAlive says whether the mm behind envFd (an open /proc/<pid>/environ,
// which pins the mm it was opened on) still has users: exec and exit drop them. exe is the dev:ino of the
// running image; userns the process's user namespace as /proc names it ("user:[4026531837]"), or ""
// when unreadable.
static napi_value js_proc_look(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t pid, env_fd, stat_fd, status_fd;
  if (!get_args(env, info, 4, argv) || !get_int(env, argv[0], "pid", &pid) ||
      !get_int(env, argv[1], "envFd", &env_fd) || !get_int(env, argv[2], "statFd", &stat_fd) ||
      !get_int(env, argv[3], "statusFd", &status_fd)) {
    return NULL;
  }
#ifdef __linux__
  char path[64], text[4096];
  ssize_t n;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  n = stat_fd >= 0 ? read_held(stat_fd, text, sizeof text) : read_small(path, text, sizeof text);
  if (n < 0) return throw_errno(env, (int)-n, "read(stat)");
  // Fields after the command name, which may itself hold ") ": the state is field 3.
  char *rest = strrchr(text, ')');
  if (rest == NULL || rest[1] != ' ') return throw_errno(env, EINVAL, "procLook(stat)");
  rest += 2;
  char state = rest[0];
  char layout[512];
  size_t used = 0;
  int field = 3;
  for (char *tok = rest; tok != NULL && *tok != '\0' && field <= 51; field++) {
    char *end = strchr(tok, ' ');
    size_t len = end ? (size_t)(end - tok) : strlen(tok);
    bool wanted = field == 22 || (field >= 26 && field <= 28) || (field >= 45 && field <= 51);
    if (wanted && used + len + 1 < sizeof layout) {
      memcpy(layout + used, tok, len);
      used += len;
      layout[used++] = ' ';
    }
    tok = end ? end + 1 : NULL;
  }
  // Fewer fields than a 3.5+ kernel writes: nothing to compare, so nothing to trust.
  if (field <= 51) return throw_errno(env, EINVAL, "procLook(stat fields)");
  layout[used ? used - 1 : 0] = '\0';
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  n = status_fd >= 0 ? read_held(status_fd, text, sizeof text) : read_small(path, text, sizeof text);
  if (n < 0) return throw_errno(env, (int)-n, "read(status)");
  const char *tracer = strstr(text, "\nTracerPid:");
  const char *uid_line = strstr(text, "\nUid:");
  if (tracer == NULL || uid_line == NULL) return throw_errno(env, EINVAL, "procLook(status)");
  long tracer_pid = strtol(tracer + 11, NULL, 10);
  char uids[96];
  unsigned long u[4] = {0, 0, 0, 0};
  char *p = (char *)uid_line + 5;
  for (int i = 0; i < 4; i++) u[i] = strtoul(p, &p, 10);
  snprintf(uids, sizeof uids, "%lu %lu %lu %lu", u[0], u[1], u[2], u[3]);
  struct stat st;
  snprintf(path, sizeof path, "/proc/%d/exe", pid);
  if (stat(path, &st) < 0) return throw_errno(env, errno, "stat(exe)");
  char exe[64];
  snprintf(exe, sizeof exe, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
  bool env_alive = false;
  if (env_fd >= 0) {
    char c;
    do {
      n = pread(env_fd, &c, 1, 0);
    } while (n < 0 && errno == EINTR);
    env_alive = n == 1;
  }
  char userns[64];
  snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
  n = readlink(path, userns, sizeof userns - 1);
  userns[n > 0 ? n : 0] = '\0';
  char state_text[2] = {state, '\0'};
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, state_text, 1, &v);
  napi_set_named_property(env, obj, "state", v);
  napi_set_named_property(env, obj, "tracerPid", make_int(env, tracer_pid));
  napi_create_string_utf8(env, uids, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "uids", v);
  napi_create_string_utf8(env, layout, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "layout", v);
  napi_create_string_utf8(env, exe, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "exe", v);
  napi_set_named_property(env, obj, "envAlive", make_bool(env, env_alive));
  napi_create_string_utf8(env, userns, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "userns", v);
  return obj;
#else
  (void)pid;
  (void)env_fd;
  (void)stat_fd;
  (void)status_fd;
  return throw_errno(env, ENOSYS, "procLook");
#endif
}

// userNamespaceChain(pid, maxDepth) -> [inode of pid's user namespace, of its parent, ...], at most
// maxDepth entries, ending where the kernel shows no parent (the initial namespace, or one above ours).
// A sandbox's broker serves the namespace bwrap made and those nested in it: unprivileged bwrap runs the
// command one namespace further down when it had to map root to mount /dev/pts.
static napi_value js_user_namespace_chain(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t pid, max_depth;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "pid", &pid) ||
      !get_int(env, argv[1], "maxDepth", &max_depth)) {
    return NULL;
  }
#ifdef __linux__
#ifndef NS_GET_PARENT
#define NS_GET_PARENT _IO(0xb7, 0x2)
#endif
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open(ns/user)");
  napi_value out;
  napi_create_array(env, &out);
  for (int depth = 0; depth < max_depth; depth++) {
    struct stat st;
    if (fstat(fd, &st) < 0) {
      int err = errno;
      close(fd);
      return throw_errno(env, err, "fstat(ns/user)");
    }
    napi_set_element(env, out, (uint32_t)depth, make_int(env, (int64_t)st.st_ino));
    int parent = ioctl(fd, NS_GET_PARENT);
    close(fd);
    if (parent < 0) return out;
    fd = parent;
  }
  close(fd);
  return out;
#else
  (void)pid;
  (void)max_depth;
  return throw_errno(env, ENOSYS, "userNamespaceChain");
#endif
}

// Bytes waiting in a socket's receive queue (FIONREAD), to know that nothing was sent before a moment.
static napi_value js_socket_inq(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  int n = 0;
  if (ioctl(fd, FIONREAD, &n) < 0) return throw_errno(env, errno, "ioctl(FIONREAD)");
  return make_int(env, n);
}

// Copies a JS string into `out`. Input longer than `size` allows, or with a NUL byte (C would stop
// there and act on a shorter name), is refused (EINVAL), never cut.
static bool get_string(napi_env env, napi_value v, const char *name, char *out, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    char text[96];
    snprintf(text, sizeof text, "%s must be a string", name);
    throw_type(env, text);
    return false;
  }
  if (len >= size) {
    throw_errno(env, EINVAL, name);
    return false;
  }
  napi_get_value_string_utf8(env, v, out, size, &len);
  if (strlen(out) != len) {
    throw_errno(env, EINVAL, name);
    return false;
  }
  return true;
}

// statKey(path): stat(2) as "dev:ino:size:mtimeNs:ctimeNs" (the key identity/hash.ts builds from a
// bigint fstat), or null when the path does not exist. The daemon checks a few files on every request
// (policy, audit log, pinned executables); one syscall here costs a fraction of Node's bigint Stats.
static napi_value js_stat_key(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[4096];
  if (!get_args(env, info, 1, argv) || !get_string(env, argv[0], "path", path, sizeof path)) return NULL;
  struct stat st;
  if (stat(path, &st) < 0) {
    if (errno == ENOENT) {
      napi_value null_value;
      napi_get_null(env, &null_value);
      return null_value;
    }
    return throw_errno(env, errno, "stat");
  }
#ifdef __APPLE__
  struct timespec mtime = st.st_mtimespec, ctime = st.st_ctimespec;
#else
  struct timespec mtime = st.st_mtim, ctime = st.st_ctim;
#endif
  char key[160];
  snprintf(key, sizeof key, "%llu:%llu:%lld:%lld:%lld", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino, (long long)st.st_size,
           (long long)mtime.tv_sec * 1000000000LL + mtime.tv_nsec,
           (long long)ctime.tv_sec * 1000000000LL + ctime.tv_nsec);
  napi_value out;
  napi_create_string_utf8(env, key, NAPI_AUTO_LENGTH, &out);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Process hardening and locks

static napi_value js_harden(napi_env env, napi_callback_info info) {
  (void)info;
  struct rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) < 0) return throw_errno(env, errno, "setrlimit(RLIMIT_CORE)");
#ifdef __linux__
  // Also blocks same-user ptrace attach and /proc/<pid>/mem reads (without CAP_SYS_PTRACE).
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) return throw_errno(env, errno, "prctl(PR_SET_DUMPABLE)");
#endif
  // macOS: PT_DENY_ATTACH is deliberately not used: it makes debugging node itself impossible.
  return make_undefined(env);
}

// noCoreDump(): for the CLI's commands that hold values (secret get/set, run, inject, vault rekey). On
// Linux only PR_SET_DUMPABLE 0: no core file and no same-user ptrace, and execve resets it, so the
// program `run` starts crashes and is debugged as it would anyway (RLIMIT_CORE 0 would be inherited).
// macOS has no such flag: the soft RLIMIT_CORE goes to 0 there, leaving the hard limit to raise again.
static napi_value js_no_core_dump(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __linux__
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) return throw_errno(env, errno, "prctl(PR_SET_DUMPABLE)");
#else
  struct rlimit rl;
  if (getrlimit(RLIMIT_CORE, &rl) < 0) return throw_errno(env, errno, "getrlimit(RLIMIT_CORE)");
  rl.rlim_cur = 0;
  if (setrlimit(RLIMIT_CORE, &rl) < 0) return throw_errno(env, errno, "setrlimit(RLIMIT_CORE)");
#endif
  return make_undefined(env);
}

// raiseNofile(want): lifts the soft RLIMIT_NOFILE towards `want` (never past the hard limit, never down)
// and returns the soft limit now in force. Node usually raises it to the hard limit already; this makes
// the daemon's connection limit follow from the limit it really has (a low hard limit in a container or
// a service manager's setting), instead of failing with EMFILE under load.
static napi_value js_raise_nofile(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t want;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "want", &want)) return NULL;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return throw_errno(env, errno, "getrlimit(RLIMIT_NOFILE)");
  rlim_t target = want > 0 ? (rlim_t)want : 0;
  if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max) target = rl.rlim_max;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
    struct rlimit raised = {target, rl.rlim_max};
    // macOS refuses values above kern.maxfilesperproc with EINVAL: keep what we have then.
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = target;
    else if (errno != EINVAL) return throw_errno(env, errno, "setrlimit(RLIMIT_NOFILE)");
  }
  return make_int(env, rl.rlim_cur == RLIM_INFINITY ? INT32_MAX : (int64_t)rl.rlim_cur);
}

// cloexecFrom(lowest): marks every open fd >= lowest close-on-exec, so a child we spawn (bwrap) gets only
// what we hand it. libuv's spawn closes nothing it did not open itself: an fd our parent left open
// without FD_CLOEXEC (`exec 9<secret` in a shell) would otherwise reach the sandboxed command. Returns
// how many fds were examined one by one (0 when close_range did it in one call).
static napi_value js_cloexec_from(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t lowest;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "lowest", &lowest)) return NULL;
  if (lowest < 0) return throw_type(env, "lowest must be >= 0");
#if defined(__linux__) && defined(SYS_close_range)
  // CLOSE_RANGE_CLOEXEC (Linux 5.11): one call, no fd left out.
  if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 4U) == 0) return make_int(env, 0);
#endif
  int count = 0;
#ifdef __linux__
  // Older kernels: the fds that are open, as /proc/self/fd lists them.
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return throw_errno(env, errno, "opendir(/proc/self/fd)");
  int skip = dirfd(dir);
  for (struct dirent *e = readdir(dir); e != NULL; e = readdir(dir)) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end != '\0' || fd < lowest || fd == skip) continue;
    int flags = fcntl((int)fd, F_GETFD);
    if (flags >= 0) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    count++;
  }
  closedir(dir);
#else
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = lowest; fd < max; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) {
      fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
      count++;
    }
  }
#endif
  return make_int(env, count);
}

static napi_value js_is_dumpable(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __linux__
  int r = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (r < 0) return throw_errno(env, errno, "prctl(PR_GET_DUMPABLE)");
  return make_bool(env, r != 0);
#else
  struct rlimit rl;
  if (getrlimit(RLIMIT_CORE, &rl) < 0) return throw_errno(env, errno, "getrlimit(RLIMIT_CORE)");
  return make_bool(env, rl.rlim_cur != 0);
#endif
}

static napi_value js_flock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  bool exclusive, nonblocking;
  if (!get_args(env, info, 3, argv) || !get_int(env, argv[0], "fd", &fd) ||
      !get_bool(env, argv[1], "exclusive", &exclusive) || !get_bool(env, argv[2], "nonblocking", &nonblocking)) {
    return NULL;
  }
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (nonblocking ? LOCK_NB : 0);
  int r;
  do {
    r = flock(fd, op);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (nonblocking && errno == EWOULDBLOCK) return make_bool(env, false);
    return throw_errno(env, errno, "flock");
  }
  return make_bool(env, true);
}

static napi_value js_funlock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  if (flock(fd, LOCK_UN) < 0) return throw_errno(env, errno, "flock(LOCK_UN)");
  return make_undefined(env);
}

// ---------------------------------------------------------------------------------------------------
// Linux kernel keyring (raw syscalls)

#ifdef __linux__
static long keyctl(int op, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
  return syscall(SYS_keyctl, op, a2, a3, a4, a5);
}

// KEYCTL_READ/DESCRIBE: ask for the size, then read; retry if the payload grew in between.
// Returns a malloc'd buffer (caller frees) and its length, or NULL with errno set.
static char *keyctl_fetch(int op, int32_t serial, size_t *out_len) {
  for (;;) {
    long size = keyctl(op, (unsigned long)serial, 0, 0, 0);
    if (size < 0) return NULL;
    char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    long got = keyctl(op, (unsigned long)serial, (unsigned long)buf, (unsigned long)size, 0);
    if (got >= 0 && got <= size) {
      *out_len = (size_t)got;
      return buf;
    }
    int err = errno;
    memset(buf, 0, (size_t)size);
    free(buf);
    if (got < 0) {
      errno = err;
      return NULL;
    }
  }
}
#endif

static napi_value js_key_add(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
#ifdef __linux__
  char type[33], desc[4096];
  void *data;
  size_t len;
  int32_t keyring;
  bool is_buffer = false;
  napi_is_buffer(env, argv[2], &is_buffer);
  if (!get_string(env, argv[0], "type", type, sizeof type) ||
      !get_string(env, argv[1], "description", desc, sizeof desc) || !get_int(env, argv[3], "keyring", &keyring)) {
    return NULL;
  }
  if (!is_buffer) return throw_type(env, "payload must be a Buffer");
  napi_get_buffer_info(env, argv[2], &data, &len);
  long serial = syscall(SYS_add_key, type, desc, len ? data : "", len, keyring);
  if (serial < 0) return throw_errno(env, errno, "add_key");
  return make_int(env, serial);
#else
  return throw_errno(env, ENOSYS, "add_key");
#endif
}

static napi_value js_key_search(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
#ifdef __linux__
  int32_t keyring;
  char type[33], desc[4096];
  if (!get_int(env, argv[0], "keyring", &keyring) || !get_string(env, argv[1], "type", type, sizeof type) ||
      !get_string(env, argv[2], "description", desc, sizeof desc)) {
    return NULL;
  }
  long serial = keyctl(EC_KEYCTL_SEARCH, (unsigned long)keyring, (unsigned long)type, (unsigned long)desc, 0);
  if (serial < 0) {
    if (errno == ENOKEY) return make_int(env, -1);
    return throw_errno(env, errno, "keyctl(KEYCTL_SEARCH)");
  }
  return make_int(env, serial);
#else
  return throw_errno(env, ENOSYS, "keyctl");
#endif
}

static napi_value js_key_read(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t serial;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "serial", &serial)) return NULL;
#ifdef __linux__
  size_t len;
  char *buf = keyctl_fetch(EC_KEYCTL_READ, serial, &len);
  if (buf == NULL) return throw_errno(env, errno, "keyctl(KEYCTL_READ)");
  napi_value out;
  napi_create_buffer_copy(env, len, buf, NULL, &out);
  memset(buf, 0, len);
  free(buf);
  return out;
#else
  return throw_errno(env, ENOSYS, "keyctl");
#endif
}

static napi_value js_key_describe(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t serial;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "serial", &serial)) return NULL;
#ifdef __linux__
  size_t len;
  char *buf = keyctl_fetch(EC_KEYCTL_DESCRIBE, serial, &len);
  if (buf == NULL) return throw_errno(env, errno, "keyctl(KEYCTL_DESCRIBE)");
  // The kernel counts the terminating NUL.
  if (len > 0 && buf[len - 1] == '\0') len--;
  napi_value out;
  napi_create_string_utf8(env, buf, len, &out);
  free(buf);
  return out;
#else
  return throw_errno(env, ENOSYS, "keyctl");
#endif
}

static napi_value js_key_unlink(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t serial, keyring;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "serial", &serial) ||
      !get_int(env, argv[1], "keyring", &keyring)) {
    return NULL;
  }
#ifdef __linux__
  if (keyctl(EC_KEYCTL_UNLINK, (unsigned long)serial, (unsigned long)keyring, 0, 0) < 0) {
    return throw_errno(env, errno, "keyctl(KEYCTL_UNLINK)");
  }
  return make_undefined(env);
#else
  return throw_errno(env, ENOSYS, "keyctl");
#endif
}

static napi_value js_key_invalidate(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t serial;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "serial", &serial)) return NULL;
#ifdef __linux__
  if (keyctl(EC_KEYCTL_INVALIDATE, (unsigned long)serial, 0, 0, 0) < 0) {
    return throw_errno(env, errno, "keyctl(KEYCTL_INVALIDATE)");
  }
  return make_undefined(env);
#else
  return throw_errno(env, ENOSYS, "keyctl");
#endif
}

static napi_value js_key_set_timeout(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t serial, seconds;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "serial", &serial) ||
      !get_int(env, argv[1], "seconds", &seconds)) {
    return NULL;
  }
  if (seconds < 0) return throw_errno(env, EINVAL, "keyctl(KEYCTL_SET_TIMEOUT)");
#ifdef __linux__
  if (keyctl(EC_KEYCTL_SET_TIMEOUT, (unsigned long)serial, (unsigned long)seconds, 0, 0) < 0) {
    return throw_errno(env, errno, "keyctl(KEYCTL_SET_TIMEOUT)");
  }
  return make_undefined(env);
#else
  return throw_errno(env, ENOSYS, "keyctl");
#endif
}

static napi_value js_keyring_list(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t keyring;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "keyring", &keyring)) return NULL;
#ifdef __linux__
  size_t len;
  char *buf = keyctl_fetch(EC_KEYCTL_READ, keyring, &len);
  if (buf == NULL) return throw_errno(env, errno, "keyctl(KEYCTL_READ)");
  size_t count = len / sizeof(int32_t);
  napi_value out;
  napi_create_array_with_length(env, count, &out);
  for (size_t i = 0; i < count; i++) {
    int32_t serial;
    memcpy(&serial, buf + i * sizeof serial, sizeof serial);
    napi_set_element(env, out, (uint32_t)i, make_int(env, serial));
  }
  free(buf);
  return out;
#else
  return throw_errno(env, ENOSYS, "keyctl");
#endif
}

// ---------------------------------------------------------------------------------------------------

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"peerCred", NULL, js_peer_cred, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerUid", NULL, js_peer_uid, NULL, NULL, NULL, napi_enumerable, NULL},
      {"passCred", NULL, js_pass_cred, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startReader", NULL, js_start_reader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stopReader", NULL, js_stop_reader, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pidfdAlive", NULL, js_pidfd_alive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pidfdOpen", NULL, js_pidfd_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"procLook", NULL, js_proc_look, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerToken", NULL, js_peer_token, NULL, NULL, NULL, napi_enumerable, NULL},
      {"userNamespaceChain", NULL, js_user_namespace_chain, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketInq", NULL, js_socket_inq, NULL, NULL, NULL, napi_enumerable, NULL},
      {"statKey", NULL, js_stat_key, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pipe", NULL, js_pipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"harden", NULL, js_harden, NULL, NULL, NULL, napi_enumerable, NULL},
      {"noCoreDump", NULL, js_no_core_dump, NULL, NULL, NULL, napi_enumerable, NULL},
      {"isDumpable", NULL, js_is_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cloexecFrom", NULL, js_cloexec_from, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raiseNofile", NULL, js_raise_nofile, NULL, NULL, NULL, napi_enumerable, NULL},
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"funlock", NULL, js_funlock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keyAdd", NULL, js_key_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keySearch", NULL, js_key_search, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keyRead", NULL, js_key_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keyDescribe", NULL, js_key_describe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keyUnlink", NULL, js_key_unlink, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keyInvalidate", NULL, js_key_invalidate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keySetTimeout", NULL, js_key_set_timeout, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keyringList", NULL, js_keyring_list, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
