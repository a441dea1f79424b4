"""The clinic page (`lumbar-twin serve`): a local Dash app over the same library functions as the CLI."""
