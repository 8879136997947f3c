"""The operator's page of a stream (`--web`) and of saved anomalies (`cfnc-edge review`)."""
