"""retroscope.infer"""
