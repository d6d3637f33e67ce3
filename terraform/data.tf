# DR with data (docs/sites.md): an optional primary database and a read
# replica of it, so the demo's site plan can promote the replica (promote_replica) behind
# an RPO gate on its CloudWatch ReplicaLag. Off by default (var.read_replica).

resource "aws_db_instance" "primary" {
  count                       = var.read_replica ? 1 : 0
  identifier                  = "${var.name}-db"
  engine                      = "postgres"
  instance_class              = "db.t3.micro"
  allocated_storage           = 20
  username                    = "floatover"
  manage_master_user_password = true
  backup_retention_period     = 1 # a source of read replicas needs backups
  skip_final_snapshot         = true
  tags                        = local.tags
}

resource "aws_db_instance" "replica" {
  count               = var.read_replica ? 1 : 0
  identifier          = "${var.name}-db-replica"
  replicate_source_db = aws_db_instance.primary[0].identifier
  instance_class      = "db.t3.micro"
  skip_final_snapshot = true
  tags                = local.tags
}
