"""The CLI's command groups, one module each; ``common`` holds the options they share."""
