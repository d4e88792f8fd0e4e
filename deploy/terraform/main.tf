# Publishes the tandem extension as Lambda layers (x86_64 and arm64) and, optionally,
# an example function that uses the one matching its architecture with TANDEM_*
# settings. Build the zips first with `cargo xtask layer`.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

resource "aws_lambda_layer_version" "tandem" {
  for_each = var.layer_zips

  layer_name               = "${var.layer_name}-${each.key}"
  description              = "tandem Lambda extension (${each.key}, glibc 2.17 baseline)"
  filename                 = each.value
  source_code_hash         = filebase64sha256(each.value)
  compatible_architectures = [each.key]
  license_info             = "Apache-2.0"
}

resource "aws_iam_role" "example" {
  count = var.create_example_function ? 1 : 0
  name  = "${var.layer_name}-example"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "example_logs" {
  count      = var.create_example_function ? 1 : 0
  role       = aws_iam_role.example[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

data "archive_file" "example" {
  count       = var.create_example_function ? 1 : 0
  type        = "zip"
  output_path = "${path.module}/example-function.zip"
  source {
    filename = "index.py"
    content  = <<-PY
      import json
      import logging

      logger = logging.getLogger()
      logger.setLevel(logging.INFO)

      def handler(event, context):
          logger.info("handling %s", context.aws_request_id)
          print(json.dumps({"level": "INFO", "message": "hello from the example", "event": event}))
          return {"ok": True}
    PY
  }
}

resource "aws_lambda_function" "example" {
  count            = var.create_example_function ? 1 : 0
  function_name    = "${var.layer_name}-example"
  role             = aws_iam_role.example[0].arn
  runtime          = "python3.12"
  handler          = "index.handler"
  architectures    = [var.example_architecture]
  memory_size      = 256
  timeout          = 10
  filename         = data.archive_file.example[0].output_path
  source_code_hash = data.archive_file.example[0].output_base64sha256
  layers           = [aws_lambda_layer_version.tandem[var.example_architecture].arn]

  environment {
    variables = var.tandem_settings
  }
}
