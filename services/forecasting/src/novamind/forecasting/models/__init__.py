"""The ensemble members (quantile Transformer, XGBoost direct quantile models) and their contract."""
