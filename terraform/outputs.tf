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

output "arc_float" {
  description = "With var.arc: the floatover group that steers arc.<zone> through the routing controls (add it under groups:)."
  value = var.arc ? yamlencode([{
    name = "arc"
    targets = [for i in range(2) : {
      name            = "t${i}"
      routing_control = aws_route53recoverycontrolconfig_routing_control.target[i].arn
      priority        = 200 - i
      probes          = [{ http = { url = "http://${aws_instance.target[i].private_ip}:${var.health_port}/health" } }]
    }]
    floats = [{
      routing_control = {
        control_panel = aws_route53recoverycontrolconfig_control_panel.demo[0].arn
        cluster       = [for e in aws_route53recoverycontrolconfig_cluster.demo[0].cluster_endpoints : { endpoint = e.endpoint, region = e.region }]
      }
    }]
  }]) : ""
}

output "replication_lag" {
  description = "With var.read_replica: the DR site's replication_lag (CloudWatch ReplicaLag of the replica)."
  value       = var.read_replica ? yamlencode({ rds = { instance = aws_db_instance.replica[0].identifier } }) : ""
}

output "promote_replica_step" {
  description = "With var.read_replica: the database step of the DR site's plan."
  value       = var.read_replica ? yamlencode({ promote_replica = { instance = aws_db_instance.replica[0].identifier, budget = "30m" } }) : ""
}
