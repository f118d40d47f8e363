// The kernel side's maps, read from the BPF object without loading it (no privileges needed).
// Every hash map the BPF programs fill must be LRU: an entry whose thread or process dies
// mid-call (killed in accept or inside an SSL call) is never deleted by the program that made
// it, and in a plain hash map such entries would pile up until the map refuses every new
// call. Only `targets`, `ssl_layouts`, `file_layouts` and `target_comms` are plain: userspace adds
// and removes their entries (a forked child of a target inherits its parent's `targets` and
// `ssl_layouts` entries in the kernel, and an exec of a --comm's program or of a --pid's
// descendant sets its `targets` entry; userspace adopts or deletes them, and prunes those of
// processes gone). `pid_trees` is LRU: the kernel adds a --pid's descendants at their fork.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tap.skel.h"

namespace {

TEST(BpfMaps, HashMapsFilledByTheKernelAreLru) {
  std::unique_ptr<tap_bpf, void (*)(tap_bpf*)> skel(tap_bpf__open(), tap_bpf__destroy);
  ASSERT_NE(skel, nullptr);
  int hash_maps = 0;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skel->obj) {
    const std::string name = bpf_map__name(map);
    const bpf_map_type type = bpf_map__type(map);
    if (type != BPF_MAP_TYPE_HASH && type != BPF_MAP_TYPE_LRU_HASH) continue;
    ++hash_maps;
    if (name == "targets" || name == "ssl_layouts" || name == "file_layouts" ||
        name == "target_comms")
      EXPECT_EQ(type, BPF_MAP_TYPE_HASH) << name;
    else
      EXPECT_EQ(type, BPF_MAP_TYPE_LRU_HASH) << name << " is filled per thread or connection";
  }
  EXPECT_GE(hash_maps, 12);  // inflight, accept_args, conns, socks, the Go and handshake maps,
                             // cipher_socks, go_hs_conns, ssl_layouts
  EXPECT_EQ(bpf_map__type(skel->maps.inflight), BPF_MAP_TYPE_LRU_HASH);
  EXPECT_EQ(bpf_map__type(skel->maps.accept_args), BPF_MAP_TYPE_LRU_HASH);
  EXPECT_EQ(bpf_map__type(skel->maps.cipher_socks), BPF_MAP_TYPE_LRU_HASH);
  EXPECT_EQ(bpf_map__type(skel->maps.pid_trees), BPF_MAP_TYPE_LRU_HASH);
  EXPECT_EQ(bpf_map__type(skel->maps.file_layouts), BPF_MAP_TYPE_HASH);
}

}  // namespace
