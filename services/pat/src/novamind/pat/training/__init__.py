"""Training commands of the PAT service: pretraining and fine-tuning."""
