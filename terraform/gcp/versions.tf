terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }

  # State in a bucket of the project: terraform init -backend-config="bucket=PROJECT-tfstate"
  backend "gcs" {
    prefix = "cadre"
  }
}
