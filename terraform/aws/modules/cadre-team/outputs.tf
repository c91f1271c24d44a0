output "queue_urls" {
  description = "Each step's queue."
  value       = { for step, queue in aws_sqs_queue.step : step => queue.url }
}

output "dead_letter_queue_urls" {
  description = "Each step's dead-letter queue."
  value       = { for step, queue in aws_sqs_queue.dead_letter : step => queue.url }
}

output "function_names" {
  description = "Each step's Lambda function."
  value       = { for step, fn in aws_lambda_function.step : step => fn.function_name }
}

output "state_table" {
  description = "The team's DynamoDB state table (CADRE_STATE=dynamodb://NAME)."
  value       = aws_dynamodb_table.state.name
}
