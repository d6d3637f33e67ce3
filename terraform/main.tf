# A two-AZ demo for floatover: targets that serve a health endpoint, an Elastic IP on the
# first, a Route 53 zone with one weighted record per target, an S3 lease bucket and a
# least-privilege role for floatover. `outputs.tf` renders a ready floatover config.

data "aws_availability_zones" "up" {
  state = "available"
}

data "aws_caller_identity" "me" {}

data "aws_region" "here" {}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == "" ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  azs    = slice(data.aws_availability_zones.up.names, 0, 2)
  ami    = var.ami_id != "" ? var.ami_id : data.aws_ssm_parameter.al2023[0].value
  bucket = var.lease_bucket != "" ? var.lease_bucket : "${var.name}-lease-${data.aws_caller_identity.me.account_id}"
  tags   = { Project = var.name, ManagedBy = "terraform" }
}

resource "aws_vpc" "demo" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = var.name })
}

resource "aws_subnet" "az" {
  count                   = 2
  vpc_id                  = aws_vpc.demo.id
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false
  tags                    = merge(local.tags, { Name = "${var.name}-${local.azs[count.index]}" })
}

resource "aws_internet_gateway" "gw" {
  vpc_id = aws_vpc.demo.id
  tags   = local.tags
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.demo.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.gw.id
  }
  tags = local.tags
}

resource "aws_route_table_association" "az" {
  count          = 2
  subnet_id      = aws_subnet.az[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "targets" {
  name        = "${var.name}-targets"
  description = "Health endpoint from inside the VPC (floatover probes it); no SSH"
  vpc_id      = aws_vpc.demo.id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "health" {
  security_group_id = aws_security_group.targets.id
  cidr_ipv4         = var.vpc_cidr
  from_port         = var.health_port
  to_port           = var.health_port
  ip_protocol       = "tcp"
  description       = "floatover health probes"
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.targets.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "package installs and AWS APIs"
}

resource "aws_instance" "target" {
  count                  = var.instance_count
  ami                    = local.ami
  instance_type          = var.instance_type
  subnet_id              = aws_subnet.az[count.index % 2].id
  vpc_security_group_ids = [aws_security_group.targets.id]
  iam_instance_profile   = aws_iam_instance_profile.floatover.name
  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    port = var.health_port
    name = "${var.name}-${count.index}"
  })
  metadata_options {
    http_tokens = "required"
  }
  tags = merge(local.tags, { Name = "${var.name}-${count.index}" })
}

resource "aws_eip" "service" {
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${var.name}-service" })
}

resource "aws_eip_association" "initial" {
  allocation_id = aws_eip.service.id
  instance_id   = aws_instance.target[0].id
  # floatover moves it from here on.
  lifecycle {
    ignore_changes = [instance_id, network_interface_id, private_ip_address]
  }
}

resource "aws_s3_bucket" "lease" {
  bucket        = local.bucket
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "lease" {
  bucket                  = aws_s3_bucket.lease.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# The quorum's other two lease buckets, one per region in var.lease_regions. Their
# providers take the emulator's endpoint too, so localstack/ applies the same module.
provider "aws" {
  alias                       = "lease_b"
  region                      = var.lease_regions[0]
  access_key                  = var.emulator_endpoint != "" ? "test" : null
  secret_key                  = var.emulator_endpoint != "" ? "test" : null
  skip_credentials_validation = var.emulator_endpoint != ""
  skip_requesting_account_id  = var.emulator_endpoint != ""
  s3_use_path_style           = var.emulator_endpoint != ""
  endpoints {
    s3 = var.emulator_endpoint != "" ? var.emulator_endpoint : null
  }
}

provider "aws" {
  alias                       = "lease_c"
  region                      = var.lease_regions[1]
  access_key                  = var.emulator_endpoint != "" ? "test" : null
  secret_key                  = var.emulator_endpoint != "" ? "test" : null
  skip_credentials_validation = var.emulator_endpoint != ""
  skip_requesting_account_id  = var.emulator_endpoint != ""
  s3_use_path_style           = var.emulator_endpoint != ""
  endpoints {
    s3 = var.emulator_endpoint != "" ? var.emulator_endpoint : null
  }
}

resource "aws_s3_bucket" "lease_b" {
  count         = var.quorum_lease ? 1 : 0
  provider      = aws.lease_b
  bucket        = "${local.bucket}-${var.lease_regions[0]}"
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket" "lease_c" {
  count         = var.quorum_lease ? 1 : 0
  provider      = aws.lease_c
  bucket        = "${local.bucket}-${var.lease_regions[1]}"
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "lease_b" {
  count                   = var.quorum_lease ? 1 : 0
  provider                = aws.lease_b
  bucket                  = aws_s3_bucket.lease_b[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "lease_c" {
  count                   = var.quorum_lease ? 1 : 0
  provider                = aws.lease_c
  bucket                  = aws_s3_bucket.lease_c[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

locals {
  # The quorum's members as the rendered config names them (empty: one bucket).
  lease_members = var.quorum_lease ? [
    { name = "lease-${data.aws_region.here.name}", bucket = aws_s3_bucket.lease.bucket, region = data.aws_region.here.name },
    { name = "lease-${var.lease_regions[0]}", bucket = aws_s3_bucket.lease_b[0].bucket, region = var.lease_regions[0] },
    { name = "lease-${var.lease_regions[1]}", bucket = aws_s3_bucket.lease_c[0].bucket, region = var.lease_regions[1] },
  ] : []
  lease_bucket_arns = concat(
    [aws_s3_bucket.lease.arn],
    aws_s3_bucket.lease_b[*].arn,
    aws_s3_bucket.lease_c[*].arn,
  )
}

resource "aws_route53_zone" "demo" {
  name          = var.zone_name
  force_destroy = true
  tags          = local.tags
}

resource "aws_route53_record" "weighted" {
  count          = var.instance_count
  zone_id        = aws_route53_zone.demo.zone_id
  name           = "${var.record_name}.${trimsuffix(var.zone_name, ".")}"
  type           = "A"
  ttl            = 30
  set_identifier = "t${count.index}"
  records        = [aws_instance.target[count.index].private_ip]
  weighted_routing_policy {
    weight = 100
  }
  # floatover steers the weights from here on.
  lifecycle {
    ignore_changes = [weighted_routing_policy]
  }
}
