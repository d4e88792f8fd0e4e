output "layer_arns" {
  description = "Layer version ARN per architecture."
  value       = { for arch, layer in aws_lambda_layer_version.tandem : arch => layer.arn }
}

output "example_function_name" {
  description = "Name of the example function, when created."
  value       = var.create_example_function ? aws_lambda_function.example[0].function_name : null
}
