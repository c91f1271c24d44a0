terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }

  # State in a bucket of the account: terraform init -backend-config="bucket=ACCOUNT-tfstate"
  backend "s3" {
    key = "cadre/terraform.tfstate"
  }
}
