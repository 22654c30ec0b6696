# variables: one file deploys the same database to several environments.
#
#   gcl job validate examples/jobs/variables.hcl
#   gcl job inspect -var env=staging -var replicas=2 examples/jobs/variables.hcl
#   GCL_VAR_env=dev gcl job inspect examples/jobs/variables.hcl
#
# A value is taken from, lowest precedence first: the default, GCL_VAR_<name>
# in the environment, -var-file files, -var flags.

variable "env" {
  type        = string
  default     = "prod"
  description = "Deployment environment; part of every app name."

  validation {
    condition     = contains(["dev", "staging", "prod"], var.env)
    error_message = "The env must be dev, staging or prod."
  }
}

variable "replicas" {
  type    = number
  default = 3

  validation {
    condition     = var.replicas >= 1 && var.replicas <= 9
    error_message = "Run between 1 and 9 report workers."
  }
}

variable "zones" {
  type    = list(string)
  default = ["eu-1a", "eu-1b"]
}

variable "owner" {
  type        = string
  default     = null
  description = "Team owning the apps; derived from env when not set."
}

locals {
  prefix   = lower(var.env)
  is_prod  = var.env == "prod"
  vip_host = local.is_prod ? 100 : 200
  owner    = coalesce(var.owner, "team-${local.prefix}")
}

# The app name is a template: each environment gets its own app.
app "${local.prefix}-reports-db" {
  mode   = "singleton"
  vip    = format("10.0.1.%d/24", local.vip_host)
  sqlite = "/var/lib/gcl/${local.prefix}/reports.db"

  backend "exec" {
    command = "/bin/sh"
    args    = ["-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    env = {
      ENVIRONMENT = upper(var.env)
      ZONES       = join(",", var.zones)
    }
  }

  constraint {
    attribute = "node.labels.zone"
    operator  = "set_contains"
    value     = join(",", slice(var.zones, 0, 1))
  }

  meta {
    owner = local.owner
    zones = length(var.zones)
  }
}

app "${local.prefix}-report-worker" {
  mode      = "replicas"
  count     = min(var.replicas, length(var.zones) * 3)
  away_from = ["${local.prefix}-reports-db"]

  backend "exec" {
    command = "/bin/sh"
    args    = ["-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
  }
}
