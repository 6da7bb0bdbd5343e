"""`transfer review`: a local page over the audit's lists and the model's mistakes, where a person
looks at the photos and decides; every decision is a line of data/exclusions.csv.

queues reads the pipeline's tables into cards; project holds what the server knows of the
dataset (its photos, their labels, what waits for a rerun); photos draws a photo for a card;
server is the aiohttp application (every action a JSON endpoint, the page one client of it)
and what keeps it to the person at this machine (127.0.0.1, a token, the Host header).
"""
