# The team's state (infra/aws: DynamoDbStore, DynamoDbUsageLedger, DynamoDbModelCache): one table for
# every step's function. Tasks, their event logs, artifacts, step commits, model calls and cached replies
# are items keyed by `pk` / `sk`; two sparse indexes over the task items list tasks newest first and
# resolve id prefixes, a third over model calls adds up a team's spend by time. On-demand billing: a team's traffic comes
# in bursts of steps, and an idle team costs nothing. No TTL: commit records guard exactly-once steps
# for as long as a message may come back, and tasks are kept until someone deletes them.
# infra/aws's tests compare the keys and index names with the ones the store writes.

resource "aws_dynamodb_table" "state" {
  name         = "${local.prefix}state"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "kind"
    type = "S"
  }

  attribute {
    name = "created_at"
    type = "N"
  }

  attribute {
    name = "task_id"
    type = "S"
  }

  attribute {
    name = "usage_kind"
    type = "S"
  }

  attribute {
    name = "at"
    type = "N"
  }

  global_secondary_index {
    name               = "by_created"
    hash_key           = "kind"
    range_key          = "created_at"
    projection_type    = "INCLUDE"
    non_key_attributes = ["task"]
  }

  global_secondary_index {
    name            = "by_id"
    hash_key        = "kind"
    range_key       = "task_id"
    projection_type = "KEYS_ONLY"
  }

  global_secondary_index {
    name               = "usage_by_time"
    hash_key           = "usage_kind"
    range_key          = "at"
    projection_type    = "INCLUDE"
    non_key_attributes = ["row"]
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  tags = local.tags
}
