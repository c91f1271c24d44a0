output "teams" {
  description = "Per team: step service URLs, topics, dead-letter topic, database, bucket and image repository."
  value = {
    for team, deployment in module.team : team => {
      services          = deployment.services
      topics            = deployment.topics
      dead_letter_topic = deployment.dead_letter_topic
      database          = deployment.firestore_database
      bucket            = deployment.bucket
      image_repository  = deployment.image_repository
    }
  }
}
