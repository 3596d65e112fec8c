{
  "targets": [
    {
      "target_name": "pbe_capture",
      "sources": ["capture.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "../bpf",
        "../bpf/.output"
      ],
      "defines": ["NAPI_VERSION=9", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wno-missing-field-initializers"],
      "libraries": ["<!@(pkg-config --libs libbpf)"]
    },
    {
      "target_name": "pbe_packet",
      "sources": ["packet.cc", "sock-diag.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "../bpf",
        "../bpf/.output"
      ],
      "defines": ["NAPI_VERSION=9", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wno-missing-field-initializers"],
      "libraries": ["<!@(pkg-config --libs libbpf)"]
    }
  ]
}
