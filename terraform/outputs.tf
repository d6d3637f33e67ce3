output "eip" {
  description = "The Elastic IP clients use; floatover moves it."
  value       = aws_eip.service.public_ip
}

output "record" {
  description = "The weighted record floatover steers."
  value       = "${var.record_name}.${var.zone_name}"
}

output "instance_ids" {
  description = "The targets."
  value       = aws_instance.target[*].id
}

output "iam_role_arn" {
  description = "floatover's role (instance profile here; for EKS, trust it from IRSA instead)."
  value       = aws_iam_role.floatover.arn
}

output "floatover_config" {
  description = "A ready floatover config: `terraform output -raw floatover_config > floatover.yaml`."
  value = templatefile("${path.module}/floatover.yaml.tftpl", {
    region        = data.aws_region.here.name
    endpoint      = var.emulator_endpoint
    bucket        = aws_s3_bucket.lease.bucket
    lease_members = local.lease_members
    allocation    = aws_eip.service.allocation_id
    zone_id       = aws_route53_zone.demo.zone_id
    record        = "${var.record_name}.${trimsuffix(var.zone_name, ".")}"
    health_port   = var.health_port
    targets = [for i, t in aws_instance.target : {
      name        = "t${i}"
      instance_id = t.id
      ip          = t.private_ip
      priority    = 200 - i
    }]
  })
}
