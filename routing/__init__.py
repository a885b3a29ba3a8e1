"""The message pipeline: identify the customer, open the conversation, bot or human."""
