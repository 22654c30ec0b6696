# cache: a key space split into 256 hash-ring partitions spread over the
# nodes. Each partition has exactly one owner at a time; when nodes join or
# leave, only the partitions that must move change owner.
#
# Changing partitions later remaps most keys, so choose it once.
#
#   gcl job validate examples/jobs/cache.hcl

app "cache" {
  mode       = "ring"
  partitions = 256

  backend "systemd" {
    unit = "cache.service"
  }

  # Prefer nodes with spare memory, but run anywhere if none are left.
  affinity {
    attribute = "node.labels.memory"
    value     = "high"
    weight    = 50
  }

  spread {
    attribute = "node.labels.zone"
    weight    = 100
  }

  service "cache" {
    port = 6379
  }
}
