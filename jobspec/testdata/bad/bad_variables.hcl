variable "env" {
  type    = string
  default = "production"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.env)
    error_message = "The env must be dev, staging or prod."
  }
}

variable "size" {
  type    = number
  default = "large"
}

variable "region" {
  type = string
}

variable "zone" {
  default = "a"

  validation {
    condition     = var.zone != var.env
    error_message = "Zone and env must differ."
  }
}

variable "env" {
}

locals {
  a = local.b
  b = local.a
  c = var.nope
}

app "api-${var.env}" {
  mode = "spread"
  near = [local.c]

  backend "exec" {
    command = "/usr/bin/${upper(var.envv)}"
  }
}
