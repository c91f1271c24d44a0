//! Integration tests of the AWS adapters against a real SQS- and DynamoDB-protocol server
//! (`moto_server`, started once for this test binary on a free loopback port), and of the Lambda entry
//! point through a local Lambda Runtime API. The Terraform module is checked by parsing its HCL.

mod contract;
mod dynamodb;
mod lambda;
mod ledger;
mod moto;
mod sqs;
mod terraform;
