# The demo against LocalStack (what tflocal does: every endpoint overridden, fake
# credentials, no account checks). `terraform init && terraform apply` in this directory
# with LocalStack listening on var.endpoint.

variable "endpoint" {
  description = "LocalStack's URL (./localstack/localstack.sh start prints its directory; the URL is in its endpoint file)."
  type        = string
  default     = "http://127.0.0.1:4566"
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  endpoints {
    ec2     = var.endpoint
    iam     = var.endpoint
    route53 = var.endpoint
    s3      = var.endpoint
    ssm     = var.endpoint
    sts     = var.endpoint
  }
}

module "demo" {
  source = "../"
  # LocalStack has no real AMIs: any id works, and instances do not boot.
  ami_id            = "ami-0123456789abcdef0"
  lease_bucket      = "floatover-demo-lease"
  emulator_endpoint = var.endpoint
}

output "floatover_config" {
  value = module.demo.floatover_config
}
