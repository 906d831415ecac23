"""A real identity service for chinwag: accounts, password sign-in, chat identity tokens.

See README.md. Run from the repository root::

    IDENTITY_APP_ID=... IDENTITY_KEY_FILE=chat-key.json \\
        IDENTITY_CHAT_ORIGINS=http://127.0.0.1:8000 \\
        uvicorn examples.identity_service.app:app --port 9000

``IDENTITY_CHAT_ORIGINS`` (optional) lists the chinwag origins whose web client may fetch
identity tokens with this service's sign-in cookie.
"""
