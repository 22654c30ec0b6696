app "api" {
  mode  = "replicas"
  count = "three"

  backend "exec" {
    command = ["/usr/bin/api"]
    args    = "--port 8080"
    env     = ["PORT=8080"]
  }

  service "http" {
    port = true
    tags = "public"
  }

  meta {
    owner = ["a", "b"]
  }
}
