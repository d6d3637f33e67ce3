# Least privilege for floatover: exactly the API calls it makes (the test in terraform/test
# compares this policy's actions with the calls in the Rust code, both ways).
# Describe calls cannot be scoped to resources in EC2; the mutating ones are limited to
# this region and, where EC2 supports it, to the demo's resources.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "floatover" {
  statement {
    sid = "ObserveFloats"
    actions = [
      "ec2:DescribeAddresses",
      "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeRouteTables",
    ]
    resources = ["*"]
  }

  # Site promotion starts stopped standbys, in whichever region the DR site is.
  statement {
    sid = "PromoteSites"
    actions = [
      "ec2:StartInstances",
      "ec2:RunInstances",
      "ec2:DescribeLaunchTemplates",
      "ec2:DescribeImages",
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:SetDesiredCapacity",
    ]
    resources = ["*"]
  }

  # DR with data: the RPO gate reads replication lag from CloudWatch; a promotion may
  # promote an RDS read replica and scale an ECS service or an EKS node group, in
  # whichever region the DR site is. (CloudWatch metric reads cannot be scoped to a
  # resource; scope the others to your replica, service and node group.)
  statement {
    sid = "PromoteData"
    actions = [
      "cloudwatch:GetMetricData",
      "rds:DescribeDBInstances",
      "rds:PromoteReadReplica",
      "rds:DescribeDBClusters",
      "rds:DescribeGlobalClusters",
      "rds:SwitchoverGlobalCluster",
      "rds:RemoveFromGlobalCluster",
      "ecs:DescribeServices",
      "ecs:UpdateService",
      "eks:DescribeNodegroup",
      "eks:UpdateNodegroupConfig",
    ]
    resources = ["*"]
  }

  # A cold site's launch tags its instances (floatover:site, floatover:run) in any region.
  statement {
    sid       = "TagLaunchedInstances"
    actions   = ["ec2:CreateTags"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }

  statement {
    sid = "MoveFloats"
    actions = [
      "ec2:AssociateAddress",
      "ec2:DisassociateAddress",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
      "ec2:CreateRoute",
      "ec2:ReplaceRoute",
      "ec2:DeleteRoute",
      "ec2:CreateTags",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [data.aws_region.here.name]
    }
  }

  # The lease and the promotion record beside it, in every lease bucket (one, or the
  # quorum's three).
  statement {
    sid       = "Lease"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [for arn in local.lease_bucket_arns : "${arn}/floatover/*"]
  }

  statement {
    sid = "SteerWeights"
    actions = [
      "route53:ListResourceRecordSets",
      "route53:ChangeResourceRecordSets",
    ]
    resources = [aws_route53_zone.demo.arn]
  }

  # Route 53 ARC routing controls (the routing_control float and the routing_controls
  # step) go through the cluster's data plane. The demo creates no ARC cluster (see
  # arc.tf, off by default): scope this to your control panel's ARN when you use one.
  statement {
    sid = "RoutingControls"
    actions = [
      "route53-recovery-cluster:ListRoutingControls",
      "route53-recovery-cluster:UpdateRoutingControlStates",
    ]
    resources = var.arc ? ["${aws_route53recoverycontrolconfig_control_panel.demo[0].arn}/*", aws_route53recoverycontrolconfig_control_panel.demo[0].arn] : ["arn:aws:route53-recovery-control::${data.aws_caller_identity.me.account_id}:controlpanel/*"]
  }

  statement {
    sid       = "WaitInsync"
    actions   = ["route53:GetChange"]
    resources = ["arn:aws:route53:::change/*"]
  }
}

resource "aws_iam_role" "floatover" {
  name               = "${var.name}-floatover"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "floatover" {
  name   = "floatover"
  role   = aws_iam_role.floatover.id
  policy = data.aws_iam_policy_document.floatover.json
}

resource "aws_iam_instance_profile" "floatover" {
  name = "${var.name}-floatover"
  role = aws_iam_role.floatover.name
}
