"""What infer.py does: its flags (options.py), choosing styles and source glyphs and writing
them in a learned style (render.py), and the output layouts (layouts.py). The one eval-mode
generation path they call is `model.inference`."""
