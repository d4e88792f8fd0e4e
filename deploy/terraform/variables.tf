variable "layer_name" {
  description = "Base name of the layers (the architecture is appended)."
  type        = string
  default     = "tandem"
}

variable "layer_zips" {
  description = "Layer zip per Lambda architecture, as built by `cargo xtask layer`."
  type        = map(string)
  default = {
    x86_64 = "../../target/layer/tandem-x86_64.zip"
    arm64  = "../../target/layer/tandem-arm64.zip"
  }
  validation {
    condition     = alltrue([for k in keys(var.layer_zips) : contains(["x86_64", "arm64"], k)])
    error_message = "layer_zips keys must be x86_64 or arm64."
  }
}

variable "create_example_function" {
  description = "Also create an example Python function with the layer attached."
  type        = bool
  default     = false
}

variable "example_architecture" {
  description = "Architecture of the example function (x86_64 or arm64)."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.example_architecture)
    error_message = "example_architecture must be x86_64 or arm64."
  }
}

variable "tandem_settings" {
  description = "Environment of the example function: TANDEM_* and OTEL_* settings."
  type        = map(string)
  default = {
    TANDEM_SINKS           = "stdout"
    TANDEM_FLUSH           = "adaptive"
    TANDEM_FLUSH_BUDGET_MS = "100"
  }
}
