"""The usual tutorial demo, as the start-up baseline: gr.Interface around transformers.pipeline.

    MODEL_ID=outputs/<run> python bench/baseline_app.py
"""

import os

import gradio as gr
from transformers import pipeline

classifier = pipeline("text-classification", model=os.environ["MODEL_ID"], top_k=None)


def classify(text):
    return {row["label"]: row["score"] for row in classifier([text], truncation=True)[0]}


demo = gr.Interface(classify, gr.Textbox(label="Review"), gr.Label(), api_name="classify")

if __name__ == "__main__":
    demo.launch(server_name="127.0.0.1", server_port=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
