// The demo client as a compiled program, for `make run` on macOS: there the daemon identifies callers by
// their audit token and cannot pin a script to an interpreter, so it serves compiled programs only. It
// speaks the wire protocol of docs/protocol.md directly: a hello, then whoami and two gets, confirming a
// challenge from this same process when one comes. Built by scripts/demo.sh with the system's cc.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_JSON 65536

static int sock = -1;
static char json[MAX_JSON + 1];
static unsigned char value[4096];
static size_t value_len;

// Reads exactly n bytes; any short read is the daemon gone.
static void read_all(void *buf, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(sock, (char *)buf + got, n - got);
    if (r <= 0) {
      fprintf(stderr, "demo-client: the daemon closed the connection\n");
      exit(1);
    }
    got += (size_t)r;
  }
}

// Frame = u32 BE length of the rest | u32 BE JSON length | JSON | attachment (none from us).
static void send_frame(const char *text) {
  uint32_t j = (uint32_t)strlen(text), l = 4 + j;
  unsigned char head[8] = {l >> 24, l >> 16, l >> 8, l, j >> 24, j >> 16, j >> 8, j};
  if (write(sock, head, 8) != 8 || write(sock, text, j) != (ssize_t)j) {
    perror("demo-client: write");
    exit(1);
  }
}

// Reads one frame: its JSON into `json`, its attachment (cut to sizeof value) into `value`.
static void recv_frame(void) {
  unsigned char head[8];
  read_all(head, 8);
  uint32_t l = (uint32_t)head[0] << 24 | head[1] << 16 | head[2] << 8 | head[3];
  uint32_t j = (uint32_t)head[4] << 24 | head[5] << 16 | head[6] << 8 | head[7];
  if (j > MAX_JSON || j + 4 > l) {
    fprintf(stderr, "demo-client: malformed frame from the daemon\n");
    exit(1);
  }
  read_all(json, j);
  json[j] = 0;
  value_len = 0;
  for (uint32_t rest = l - 4 - j; rest > 0;) {
    unsigned char chunk[4096];
    uint32_t n = rest < sizeof chunk ? rest : sizeof chunk;
    read_all(chunk, n);
    size_t keep = value_len + n <= sizeof value ? n : sizeof value - value_len;
    memcpy(value + value_len, chunk, keep);
    value_len += keep;
    rest -= n;
  }
}

// The string value of "key" in the reply (enough for the daemon's own flat fields), or "".
static const char *field(const char *key, char *out, size_t size) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  const char *at = strstr(json, pattern);
  size_t n = 0;
  if (at)
    for (at += strlen(pattern); *at && *at != '"' && n + 1 < size; at++) {
      if (*at == '\\' && at[1]) at++;
      out[n++] = *at;
    }
  out[n] = 0;
  return out;
}

// One request and its final reply; a challenge is confirmed first (docs/protocol.md, "Confirmation").
static int call(int id, const char *fields) {
  char text[1024], nonce[128];
  snprintf(text, sizeof text, "{\"id\":%d,%s}", id, fields);
  send_frame(text);
  for (recv_frame(); strstr(json, "\"challenge\":"); recv_frame()) {
    snprintf(text, sizeof text, "{\"id\":%d,\"op\":\"confirm\",\"nonce\":\"%s\"}", id,
             field("challenge", nonce, sizeof nonce));
    send_frame(text);
  }
  return strstr(json, "\"ok\":true") != NULL;
}

int main(void) {
  const char *path = getenv("ENTRACLAW_SOCKET");
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (!path || strlen(path) >= sizeof addr.sun_path) {
    fprintf(stderr, "demo-client: set ENTRACLAW_SOCKET to the daemon's socket\n");
    return 2;
  }
  strcpy(addr.sun_path, path);
  sock = socket(AF_UNIX, SOCK_STREAM, 0);
  if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
    fprintf(stderr, "demo-client: cannot connect to %s: %s\n", path, strerror(errno));
    return 1;
  }
  char exe[1024], client[256], code[64], message[1024];
  if (!call(0, "\"v\":1,\"op\":\"hello\",\"client\":\"demo-client.c\"")) {
    fprintf(stderr, "demo-client: hello refused: %s\n", json);
    return 1;
  }
  call(1, "\"op\":\"whoami\"");
  field("client", client, sizeof client);
  printf("demo-client: the daemon sees me as %s (client: %s)\n", field("exe", exe, sizeof exe),
         client[0] ? client : "not approved");
  if (call(2, "\"op\":\"get\",\"service\":\"demo.example.com\",\"account\":\"robot\"")) {
    printf("demo-client: got demo.example.com/robot (%zu bytes, starts %.5s...)\n", value_len, (char *)value);
  } else {
    printf("demo-client: demo.example.com/robot refused: %s: %s\n", field("code", code, sizeof code),
           field("message", message, sizeof message));
  }
  memset(value, 0, sizeof value);
  if (!call(3, "\"op\":\"get\",\"service\":\"bank.example.com\",\"account\":\"me\"")) {
    printf("demo-client: bank.example.com/me refused as expected: %s: %s\n", field("code", code, sizeof code),
           field("message", message, sizeof message));
  }
  close(sock);
  return 0;
}
