"""The front ends: the `momke-live` terminal CLI, the Gradio demo and the state they show.
The engine (realtime/ and realtime/sources/) never imports them."""
