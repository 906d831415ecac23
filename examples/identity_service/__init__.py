"""A real identity service for chinwag: accounts, password sign-in, chat identity tokens.

See README.md. Run from the repository root::

    IDENTITY_APP_ID=... IDENTITY_KEY_FILE=chat-key.json \\
        uvicorn examples.identity_service.app:app --port 9000
"""
