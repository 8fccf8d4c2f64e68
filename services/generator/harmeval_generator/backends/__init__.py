"""Serving engines behind one interface (`base.Engine`): llama.cpp in process, vLLM in
process, Hugging Face TGI and any OpenAI-compatible server over HTTP."""
