{
  "targets": [
    {
      "target_name": "entraclaw_native",
      "sources": ["native/entraclaw.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fvisibility=hidden"],
      "xcode_settings": { "OTHER_CFLAGS": ["-Wall", "-Wextra", "-O2"] },
      "conditions": [["OS=='mac'", { "libraries": ["-lbsm"] }]]
    }
  ]
}
