# One role per step, allowed only what that step's function does: poll and settle its own queue, send
# to the queues of the steps that follow it and to its own dead-letter queue, read and write the team's
# state table, and write its own logs.
# No statement has a wildcard action or resource (infra/aws's tests check it).

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "step" {
  for_each = local.steps

  name               = "${local.prefix}${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "step" {
  for_each = local.steps

  name = "${local.prefix}${each.key}"
  role = aws_iam_role.step[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ConsumeOwnQueue"
          Effect   = "Allow"
          Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
          Resource = [aws_sqs_queue.step[each.key].arn]
        },
        {
          Sid      = "DeadLetterOwnMessages"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
          Resource = [aws_sqs_queue.dead_letter[each.key].arn]
        },
        {
          # What the DynamoDB store, usage ledger and model cache call: DescribeTable at start, GetItem
          # and Query to read, PutItem, and the PutItem / UpdateItem that the store's TransactWriteItems
          # consist of (IAM checks each action of a transaction); on the team's table and its three
          # indexes only. No DeleteItem, no Scan.
          Sid      = "TaskState"
          Effect   = "Allow"
          Action   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"]
          Resource = [aws_dynamodb_table.state.arn, "${aws_dynamodb_table.state.arn}/index/by_created", "${aws_dynamodb_table.state.arn}/index/by_id", "${aws_dynamodb_table.state.arn}/index/usage_by_time"]
        },
        {
          Sid      = "WriteOwnLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = ["${aws_cloudwatch_log_group.step[each.key].arn}:*"]
        },
      ],
      length(local.publishes[each.key]) == 0 ? [] : [
        {
          Sid      = "PublishToNextSteps"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = [for next in local.publishes[each.key] : aws_sqs_queue.step[next].arn]
        },
      ],
    )
  })
}
