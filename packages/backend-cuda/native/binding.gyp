{
  "targets": [
    {
      "target_name": "tp_cuda",
      "sources": ["src/addon.cc", "src/context.cc", "src/libs.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../kernels"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-ldl"]
    }
  ]
}
