output "teams" {
  description = "Per team: each step's queue, dead-letter queue and function, and the state table."
  value = {
    for team, deployment in module.team : team => {
      queues             = deployment.queue_urls
      dead_letter_queues = deployment.dead_letter_queue_urls
      functions          = deployment.function_names
      state_table        = deployment.state_table
    }
  }
}
