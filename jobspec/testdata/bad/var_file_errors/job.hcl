variable "replicas" {
  type = number
}

variable "tags" {
  type    = list(string)
  default = []
}

app "worker" {
  mode  = "replicas"
  count = var.replicas

  backend "exec" {
    command = "/usr/bin/worker"
    args    = var.tags
  }
}
