"""Rasa input channels for the platforms citizens already use: Zalo OA and Facebook Messenger."""

# Every `${NAME}` the channel sections of credentials.yml reference. Rasa refuses to start when
# one is unset, so the launcher defaults them to empty (which keeps that channel closed).
CREDENTIAL_ENV_VARS = (
    "ZALO_APP_ID",
    "ZALO_OA_SECRET_KEY",
    "ZALO_APP_SECRET_KEY",
    "ZALO_ACCESS_TOKEN",
    "ZALO_REFRESH_TOKEN",
    "FACEBOOK_VERIFY_TOKEN",
    "FACEBOOK_APP_SECRET",
    "FACEBOOK_PAGE_ACCESS_TOKEN",
)
