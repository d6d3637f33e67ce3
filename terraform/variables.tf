variable "name" {
  description = "Prefix of every resource name and tag."
  type        = string
  default     = "floatover-demo"
}

variable "vpc_cidr" {
  description = "CIDR of the demo VPC (two /24 subnets are cut from it, one per AZ)."
  type        = string
  default     = "10.42.0.0/16"
}

variable "instance_count" {
  description = "How many target instances (at least 2: an owner and a standby)."
  type        = number
  default     = 2
  validation {
    condition     = var.instance_count >= 2 && var.instance_count <= 10
    error_message = "instance_count must be 2..10: failover needs a standby."
  }
}

variable "instance_type" {
  description = "Instance type of the targets."
  type        = string
  default     = "t3.micro"
}

variable "ami_id" {
  description = "AMI of the targets (any Linux with python3). Empty: the latest Amazon Linux 2023 from SSM."
  type        = string
  default     = ""
}

variable "health_port" {
  description = "Port of the health endpoint the instances serve (GET /health)."
  type        = number
  default     = 8080
}

variable "zone_name" {
  description = "Route 53 hosted zone created for the demo (a private name is fine)."
  type        = string
  default     = "floatover-demo.example."
}

variable "record_name" {
  description = "Weighted record set floatover steers, inside the zone."
  type        = string
  default     = "www"
}

variable "emulator_endpoint" {
  description = "Set when applying against an emulator (LocalStack): the rendered floatover config then points there and writes DNS members with UPSERT (see docs/terraform.md)."
  type        = string
  default     = ""
}

variable "lease_bucket" {
  description = "S3 bucket for the lease (empty: <name>-lease-<account id>)."
  type        = string
  default     = ""
}

variable "quorum_lease" {
  description = "Keep the lease on a majority of three buckets (this region's and one in each of lease_regions), so floatover keeps a leader when one region is lost (docs/leader-election.md, \"Surviving a region\"). false: one bucket in this region."
  type        = bool
  default     = true
}

variable "lease_regions" {
  description = "The two other regions of the quorum's lease buckets (a witness each; pick regions that do not fail with this one)."
  type        = list(string)
  default     = ["us-west-2", "us-east-2"]
  validation {
    condition     = length(var.lease_regions) == 2 && alltrue([for r in var.lease_regions : can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]+$", r))])
    error_message = "lease_regions: exactly two AWS region names, e.g. [\"us-west-2\", \"us-east-2\"]."
  }
}

variable "arc" {
  description = "Also create a Route 53 ARC cluster, a control panel with one routing control for each of the first two targets, an at-least-one-on safety rule, and failover records tied to the controls (output arc_float is the group to add to the config). Off by default: an ARC cluster costs about $2.50 an hour, and no emulator serves ARC."
  type        = bool
  default     = false
}

variable "read_replica" {
  description = "Also create a small PostgreSQL RDS instance and a read replica of it (output replication_lag is the site's `replication_lag`, promote_replica_step its database step). Off by default: RDS is billed by the hour; against LocalStack it needs moto (the community LocalStack has no RDS)."
  type        = bool
  default     = false
}
