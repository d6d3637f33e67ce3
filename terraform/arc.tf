# Failover without Route 53's change API (docs/leader-election.md, "Surviving a region"): the records that
# answer clients are created here, once, each tied to an ARC routing control through a
# RECOVERY_CONTROL health check. At failover floatover only turns controls on and off
# through the cluster's regional endpoints (the `routing_control` float). Off by default
# (var.arc): a cluster is billed by the hour and no emulator serves ARC.

resource "aws_route53recoverycontrolconfig_cluster" "demo" {
  count = var.arc ? 1 : 0
  name  = "${var.name}-arc"
}

resource "aws_route53recoverycontrolconfig_control_panel" "demo" {
  count       = var.arc ? 1 : 0
  name        = "${var.name}-panel"
  cluster_arn = aws_route53recoverycontrolconfig_cluster.demo[0].arn
}

resource "aws_route53recoverycontrolconfig_routing_control" "target" {
  count             = var.arc ? 2 : 0
  name              = "${var.name}-t${count.index}"
  cluster_arn       = aws_route53recoverycontrolconfig_cluster.demo[0].arn
  control_panel_arn = aws_route53recoverycontrolconfig_control_panel.demo[0].arn
}

# Never every control off: ARC itself refuses an update that would leave no target.
resource "aws_route53recoverycontrolconfig_safety_rule" "at_least_one_on" {
  count             = var.arc ? 1 : 0
  name              = "${var.name}-at-least-one-on"
  control_panel_arn = aws_route53recoverycontrolconfig_control_panel.demo[0].arn
  asserted_controls = aws_route53recoverycontrolconfig_routing_control.target[*].arn
  wait_period_ms    = 5000
  rule_config {
    inverted  = false
    threshold = 1
    type      = "ATLEAST"
  }
}

resource "aws_route53_health_check" "control" {
  count               = var.arc ? 2 : 0
  type                = "RECOVERY_CONTROL"
  routing_control_arn = aws_route53recoverycontrolconfig_routing_control.target[count.index].arn
  tags                = local.tags
}

resource "aws_route53_record" "arc" {
  count           = var.arc ? 2 : 0
  zone_id         = aws_route53_zone.demo.zone_id
  name            = "arc.${trimsuffix(var.zone_name, ".")}"
  type            = "A"
  ttl             = 30
  set_identifier  = "t${count.index}"
  records         = [aws_instance.target[count.index].private_ip]
  health_check_id = aws_route53_health_check.control[count.index].id
  failover_routing_policy {
    type = count.index == 0 ? "PRIMARY" : "SECONDARY"
  }
}
