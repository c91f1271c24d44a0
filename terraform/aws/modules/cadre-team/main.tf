# One team's Cadre deployment on AWS: per step, a FIFO SQS queue with a dead-letter queue, a Lambda
# function fed by it through an event source mapping that reports partial batch failures, and a role
# allowed only what that step does; for the team, the DynamoDB state table (state.tf). Every function runs the same binary (`cadre lambda`): the envelope
# says which step runs, and CADRE_SQS_ROUTES tells each function where the steps' queues are.

locals {
  prefix = "cadre-${var.team}-"
  tags   = { app = "cadre", team = var.team }

  # The pipeline's steps (functions/domain/src/envelope.rs, StepKind; infra/aws's tests check the two
  # agree): one queue, dead-letter queue, function, event source mapping and role each.
  steps = toset(["index", "plan", "generate", "test", "review"])

  # The queues each step publishes its next messages to (functions/steps): the only queues its role
  # may send to, besides its own dead-letter queue.
  publishes = {
    index    = ["plan"]
    plan     = ["generate"]
    generate = ["generate", "test"]
    test     = ["generate", "review"]
    review   = []
  }

  # Memory (MB) and timeout (s) per step; a queue's visibility timeout is six times its function's
  # timeout, as AWS advises for SQS event sources.
  functions = {
    index    = { memory = 2048, timeout = 600 }
    plan     = { memory = 512, timeout = 300 }
    generate = { memory = 1024, timeout = 900 }
    test     = { memory = 3008, timeout = 900 }
    review   = { memory = 256, timeout = 60 }
  }

  routes = join(",", [for step in sort(tolist(local.steps)) : "${step}=${aws_sqs_queue.step[step].url}"])
}

resource "aws_sqs_queue" "dead_letter" {
  for_each = local.steps

  name                      = "${local.prefix}${each.key}-dlq.fifo"
  fifo_queue                = true
  message_retention_seconds = 1209600
  tags                      = local.tags
}

resource "aws_sqs_queue" "step" {
  for_each = local.steps

  name                       = "${local.prefix}${each.key}.fifo"
  fifo_queue                 = true
  deduplication_scope        = "messageGroup"
  fifo_throughput_limit      = "perMessageGroupId"
  visibility_timeout_seconds = local.functions[each.key].timeout * 6
  receive_wait_time_seconds  = 20
  message_retention_seconds  = 345600
  tags                       = local.tags

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  for_each = local.steps

  queue_url = aws_sqs_queue.dead_letter[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.step[each.key].arn]
  })
}

resource "aws_cloudwatch_log_group" "step" {
  for_each = local.steps

  name              = "/aws/lambda/${local.prefix}${each.key}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_lambda_function" "step" {
  for_each = local.steps

  function_name    = "${local.prefix}${each.key}"
  role             = aws_iam_role.step[each.key].arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  memory_size      = local.functions[each.key].memory
  timeout          = local.functions[each.key].timeout
  tags             = local.tags

  environment {
    variables = merge(var.environment, {
      CADRE_SQS_QUEUE_URL   = aws_sqs_queue.step[each.key].url
      CADRE_SQS_ROUTES      = local.routes
      CADRE_STATE           = "dynamodb://${aws_dynamodb_table.state.name}"
      CADRE_MODEL           = var.model
      CADRE_TASK_BUDGET_USD = tostring(var.task_budget_usd)
      CADRE_SANDBOX         = "host"
      CADRE_HOME            = "/tmp/cadre"
      CADRE_LOG             = "info"
    })
  }

  depends_on = [aws_cloudwatch_log_group.step]
}

resource "aws_lambda_event_source_mapping" "step" {
  for_each = local.steps

  event_source_arn        = aws_sqs_queue.step[each.key].arn
  function_name           = aws_lambda_function.step[each.key].arn
  batch_size              = var.batch_size
  function_response_types = ["ReportBatchItemFailures"]
}
