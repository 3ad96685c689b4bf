"""Sharing a trained model: publish (`pipeline publish`: the model's files and its card uploaded to the Hugging Face
Hub) and hub_card (the card in the Hub's format)."""
